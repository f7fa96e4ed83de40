"""Static and promtool checks of deploy/: manifests, Prometheus rules, Grafana dashboards."""
