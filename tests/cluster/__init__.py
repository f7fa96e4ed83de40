"""Tests against a local three-broker cluster (deploy/kafka/cluster.sh): replication and standby failover."""
