"""Validates rendered Kubernetes manifests (stdin or files): every object against the
Kubernetes OpenAPI schemas of each version given (kubernetes-validate, strict: unknown fields
fail), and custom resources against the schemas in deploy/kubernetes/schemas/. An object of a
kind with no schema at all fails: nothing is skipped silently.

    python validate-kubernetes.py --kubernetes-version 1.31.0 --kubernetes-version 1.37.0 FILE…
"""

import argparse
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "schemas"
# (apiVersion, kind) of custom resources → their schema file. Anything else must be built in.
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json"}


def name(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes-version", action="append", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failures = 0
    checked = 0
    for path in args.files:
        with open(path) as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        if not objects:
            print(f"ERROR {path}: no objects")
            failures += 1
        for obj in objects:
            checked += 1
            key = (obj.get("apiVersion"), obj.get("kind"))
            if key in CUSTOM:
                schema = json.loads((SCHEMAS / CUSTOM[key]).read_text())
                try:
                    jsonschema.validate(obj, schema)
                except jsonschema.ValidationError as e:
                    print(f"ERROR {path}: {name(obj)}: {'.'.join(map(str, e.path))}: {e.message}")
                    failures += 1
                continue
            for version in args.kubernetes_version:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    print(f"ERROR {path}: {name(obj)} (Kubernetes {version}): {'.'.join(map(str, e.path))}: {e.message}")
                    failures += 1
                except kubernetes_validate.SchemaNotFoundError:
                    print(f"ERROR {path}: {name(obj)}: no schema for {key[0]} {key[1]} in Kubernetes {version} "
                          "(a custom resource needs its schema in deploy/kubernetes/schemas/)")
                    failures += 1
    print(f"{checked} objects in {len(args.files)} files checked against Kubernetes "
          f"{', '.join(args.kubernetes_version)}: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
