"""The Kafka service: thin Faust glue around the engine (ingest, re-key, relationships, web)."""
