//! Platform: the access matrix (docs/access.md), migrations, schema drift, the service set, the dev stack, the demo, the gateway web UI, the dashboard in a browser, the Kubernetes manifests (deploy/kubernetes), the Python end-to-end client and faults (a PostgreSQL restart, a killed gateway, session bounds).

mod access_matrix;
mod auth_outage;
mod backup_restore;
mod dashboard_browser;
mod db_roles;
mod db_tls;
mod demo;
mod dev_stack;
mod domain_replicas;
mod faults;
mod gateway_status;
mod gateway_web;
mod jobs;
mod kubernetes;
mod metrics;
mod migrations;
mod prepared;
mod python_e2e;
mod replica;
mod replicas;
mod schema_drift;
mod services;
mod traces;
