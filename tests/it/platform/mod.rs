//! Platform: migrations, schema drift, the service set, the dev stack, the demo, the gateway web UI, the dashboard in a browser and the Python end-to-end client.

mod migrations;
mod schema_drift;
mod services;
mod dev_stack;
mod demo;
mod gateway_web;
mod dashboard_browser;
mod python_e2e;
