"""The one settings object: every SPEC setting and every service knob, read from `STREAMS_*`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DAY_MS", "HOUR_MS", "Settings", "deployment_env", "settings_from_env"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

Clock = Literal["event", "hybrid"]
Guarantee = Literal["at_least_once", "exactly_once"]
Rule = Literal["v1", "adaptive"]
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    """Frozen configuration; each field's environment variable is `STREAMS_<FIELD>`.

    Defaults are the service's (SPEC §5). The replay command overrides
    `allowed_lateness_ms` (0) and `clock` (`event`) unless flags say otherwise.

    >>> Settings(min_touches=3).threshold_bounds()
    (1209600000, 7776000000)
    """

    model_config = SettingsConfigDict(env_prefix="STREAMS_", frozen=True, extra="forbid")

    # --- relationship semantics (SPEC §2, §3, §5) ---
    weight_mention: float = Field(
        2.0, ge=0, description="STREAMS_WEIGHT_MENTION: strength weight of a mention."
    )
    weight_reply: float = Field(3.0, ge=0, description="STREAMS_WEIGHT_REPLY: strength weight of a reply.")
    weight_like: float = Field(1.0, ge=0, description="STREAMS_WEIGHT_LIKE: strength weight of a like.")
    half_life_ms: int = Field(
        30 * DAY_MS, gt=0, description="STREAMS_HALF_LIFE_MS: strength half-life (30 days)."
    )
    touch_merge_ms: int = Field(
        6 * HOUR_MS,
        ge=0,
        description="STREAMS_TOUCH_MERGE_MS: interactions this close to a touch's start join it (6 h).",
    )
    gap_window: int = Field(
        8, ge=1, description="STREAMS_GAP_WINDOW: gaps between touch starts kept per row (8)."
    )
    min_touches: int = Field(
        5, ge=1, description="STREAMS_MIN_TOUCHES: touches before a row is established (5)."
    )
    require_mutual: bool = Field(
        True, description="STREAMS_REQUIRE_MUTUAL: established needs one interaction each way (true)."
    )
    k: float = Field(3.0, gt=0, description="STREAMS_K: threshold = k x typical gap, clamped (3.0).")
    rule: Rule = Field(
        "v1",
        description="STREAMS_RULE: `v1` (SPEC: k x typical gap, clamped) or `adaptive` (the larger of that and twice the longest recent gap shrunk towards min_silence, clamped; docs/semantics.md §3).",
    )
    min_silence_ms: int = Field(
        14 * DAY_MS, ge=0, description="STREAMS_MIN_SILENCE_MS: lower clamp of the threshold (14 days)."
    )
    max_silence_ms: int = Field(
        90 * DAY_MS, ge=0, description="STREAMS_MAX_SILENCE_MS: upper clamp of the threshold (90 days)."
    )
    allowed_lateness_ms: int = Field(
        60_000,
        ge=0,
        description="STREAMS_ALLOWED_LATENESS_MS: watermark lag behind the max event time (1 min; replay: 0).",
    )
    idle_timeout_ms: int = Field(
        30_000,
        gt=0,
        description="STREAMS_IDLE_TIMEOUT_MS: an input partition caught up and silent this long (wall time) stops holding the watermark back (30 s).",
    )
    input_max_drift_ms: int = Field(
        60_000,
        ge=0,
        description="STREAMS_INPUT_MAX_DRIFT_MS: an input partition read this far (event time) ahead of the slowest one with records waiting is not fetched until that one comes closer, so a backlog is read in event-time order and few updates wait for the watermark (1 min; 0: off; docs/guarantees.md section 11).",
    )
    clock: Clock = Field(
        "hybrid",
        description="STREAMS_CLOCK: `event`, or `hybrid` = also wall clock - lateness (replay: event).",
    )
    dedup_window_ms: int = Field(
        DAY_MS, ge=0, description="STREAMS_DEDUP_WINDOW_MS: event-time window of id de-duplication (24 h)."
    )
    row_ttl_ms: int = Field(
        0,
        ge=0,
        description="STREAMS_ROW_TTL_MS: a row not established and silent this long starts afresh at its next event, and its storage is reclaimed (SPEC v1.1 §2); 0 keeps every row. Longer than the de-duplication window; large deployments: 180 days (15552000000).",
    )
    max_future_ms: int = Field(
        HOUR_MS,
        gt=0,
        description="STREAMS_MAX_FUTURE_MS: with the hybrid clock, an event more than this ahead of the wall clock is a dead letter, reason `ts_in_future` (SPEC v1.1 §1; 1 h).",
    )
    digest_top: int = Field(
        5,
        ge=1,
        description="STREAMS_DIGEST_TOP: how many dormant relationships a daily digest lists, the strongest first; the rest are counted (docs/semantics.md §10).",
    )

    # --- service ---
    broker: str = Field(
        "kafka://127.0.0.1:9092", description="STREAMS_BROKER: Kafka bootstrap URL(s), `;`-separated."
    )
    app_id: str = Field(
        "relationships", description="STREAMS_APP_ID: consumer group and internal-topic prefix."
    )
    data_dir: Path = Field(Path(".data"), description="STREAMS_DATA_DIR: RocksDB tables and worker state.")
    web_host: str = Field(
        "127.0.0.1", description="STREAMS_WEB_HOST: bind address of the web port (metrics, health, queries)."
    )
    web_advertised_host: str | None = Field(
        None,
        description="STREAMS_WEB_ADVERTISED_HOST: host other workers reach this one at (state-query routing); default: web_host.",
    )
    web_port: int = Field(6066, ge=1, le=65535, description="STREAMS_WEB_PORT: web port (6066).")
    partitions: int = Field(
        6,
        ge=1,
        description="STREAMS_PARTITIONS: partitions of the topics `topics create` (or a starting worker) creates; only topics that do not exist yet: a worker follows the broker's counts.",
    )
    topic_mentions: str = Field(
        "interactions.mentions", description="STREAMS_TOPIC_MENTIONS: input topic of mention events."
    )
    topic_replies: str = Field(
        "interactions.replies", description="STREAMS_TOPIC_REPLIES: input topic of reply events."
    )
    topic_likes: str = Field(
        "interactions.likes", description="STREAMS_TOPIC_LIKES: input topic of like events."
    )
    topic_alerts: str = Field(
        "relationships.alerts", description="STREAMS_TOPIC_ALERTS: output topic of alerts, keyed by owner."
    )
    topic_dead_letter: str = Field(
        "interactions.dead-letter",
        description="STREAMS_TOPIC_DEAD_LETTER: rejected input records with their reason.",
    )
    digests: bool = Field(
        False,
        description="STREAMS_DIGESTS: also publish per-owner daily digests to STREAMS_TOPIC_DIGESTS (docs/semantics.md §10).",
    )
    topic_digests: str = Field(
        "relationships.digests",
        description="STREAMS_TOPIC_DIGESTS: output topic of daily digests, keyed by owner (schemas/digest.v1.json); written only with STREAMS_DIGESTS.",
    )
    topic_erasures: str = Field(
        "relationships.erasures",
        description="STREAMS_TOPIC_ERASURES: erasure requests (`streams erase`, schemas/erasure.v1.json): forget a user as of an event time.",
    )
    topic_feedback: str = Field(
        "relationships.feedback",
        description="STREAMS_TOPIC_FEEDBACK: mute, unmute and snooze requests keyed by owner (`streams feedback`, schemas/feedback.v1.json; docs/semantics.md §11).",
    )
    processing_guarantee: Guarantee = Field(
        "at_least_once",
        description="STREAMS_PROCESSING_GUARANTEE: `at_least_once` or `exactly_once` (Kafka transactions).",
    )
    ingest_batch_size: int = Field(
        2000, ge=1, description="STREAMS_INGEST_BATCH_SIZE: input records per re-keying batch."
    )
    ingest_batch_within_ms: int = Field(
        50, ge=1, description="STREAMS_INGEST_BATCH_WITHIN_MS: longest wait to fill a batch."
    )
    tick_interval_ms: int = Field(
        250,
        ge=10,
        description="STREAMS_TICK_INTERVAL_MS: how often each worker sends watermark heartbeats to every owner partition.",
    )
    checkpoint_interval_ms: int = Field(
        500,
        ge=1,
        description="STREAMS_CHECKPOINT_INTERVAL_MS: how often changed rows are written to the table (and their records acked).",
    )
    checkpoint_max_rows: int = Field(
        20_000,
        ge=1,
        description="STREAMS_CHECKPOINT_MAX_ROWS: write changed rows sooner when this many are pending.",
    )
    row_cache_mb: int = Field(
        512,
        ge=0,
        description="STREAMS_ROW_CACHE_MB: memory for rows kept decoded, per worker, shared by its owner partitions and counted at 1 KB per row; every row is in the partition's RocksDB, and one not in memory is read from there when an update needs it. Rows changed since the last checkpoint always stay. 0: only those.",
    )
    rocksdb_write_buffer_mb: int = Field(
        16,
        ge=1,
        description="STREAMS_ROCKSDB_WRITE_BUFFER_MB: RocksDB memtable size of each owner partition's database (up to 3 per database before they flush; Faust's default is 64).",
    )
    rocksdb_memory_mb: int = Field(
        128,
        ge=0,
        description="STREAMS_ROCKSDB_MEMORY_MB: RocksDB memory of the worker's owner partition databases all together: one cache shared by them for the blocks read, their index and filter blocks, and their memtables (at most half of it before one is flushed). 0: each database gets the memory Faust gives it (a 2 GB block cache of its own, index and filter blocks outside it), the baseline of `make bench-row-cache`.",
    )
    compiled_core: bool = Field(
        True,
        description="STREAMS_COMPILED_CORE: encode and decode rows in the compiled core (`core/`, module `streams_core`, built by `make install`); false: the Python reference (`Row.to_bytes`, `Row.from_bytes`), the same bytes and rows.",
    )
    restore_in_batches: bool = Field(
        True,
        description="STREAMS_RESTORE_IN_BATCHES: write the rows table's changelog records to RocksDB a fetch at a time when a worker recovers its tables or keeps standby copies; false: Faust's recovery, a record at a time (the baseline of `make bench-recovery`).",
    )
    max_record_bytes: int = Field(
        1_000_000, ge=1024, description="STREAMS_MAX_RECORD_BYTES: larger input records are dead letters."
    )
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="STREAMS_SESSION_TIMEOUT_MS: a worker silent this long leaves the group."
    )
    instance_id: str | None = Field(
        None,
        description="STREAMS_INSTANCE_ID: static group membership id (Kafka `group.instance.id`), unique per worker and stable across its restarts (the pod name in the StatefulSet); a restart within the session timeout causes no rebalance. Unset: dynamic membership.",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        description="STREAMS_REPLICATION_FACTOR: replicas of every topic the service creates (input, alert, dead-letter, owner stream, changelog, Faust's own); 1 locally, 3 in production. Topics that exist keep theirs.",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        description="STREAMS_MIN_INSYNC_REPLICAS: `min.insync.replicas` of the topics the service creates: a write (acks=all) needs this many replicas; 1 locally, 2 in production. At most STREAMS_REPLICATION_FACTOR.",
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        description="STREAMS_STANDBY_REPLICAS: other workers keep this many standby copies of each table partition, read from its changelog (Faust `table_standby_replicas`); 0: none.",
    )
    shutdown_timeout_ms: int = Field(
        30_000,
        ge=1000,
        description="STREAMS_SHUTDOWN_TIMEOUT_MS: after an agent raised, the worker exits (status 1) at the latest this long after.",
    )
    max_record_failures: int = Field(
        3,
        ge=1,
        description="STREAMS_MAX_RECORD_FAILURES: an input record whose processing raised this many times (counted across restarts, in the `<app_id>-record-failures` topic) is a dead letter, reason `processing_error`, and skipped (3).",
    )
    log_level: str = Field("info", description="STREAMS_LOG_LEVEL: debug, info, warning or error.")
    log_format: LogFormat = Field(
        "text",
        description="STREAMS_LOG_FORMAT: `text` (Faust's format) or `json` (one JSON object per line, Faust's lines too; keys such as topic, partition, offset, reason, owner_partition, guarantee).",
    )
    broker_security_protocol: str = Field(
        "PLAINTEXT",
        description="STREAMS_BROKER_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    broker_sasl_mechanism: str | None = Field(
        None, description="STREAMS_BROKER_SASL_MECHANISM: e.g. PLAIN, SCRAM-SHA-512."
    )
    broker_sasl_username: str | None = Field(None, description="STREAMS_BROKER_SASL_USERNAME: SASL user.")
    broker_sasl_password: str | None = Field(
        None, repr=False, description="STREAMS_BROKER_SASL_PASSWORD: SASL password (never logged)."
    )
    broker_ssl_cafile: Path | None = Field(None, description="STREAMS_BROKER_SSL_CAFILE: CA bundle for TLS.")
    broker_ssl_certfile: Path | None = Field(
        None,
        description="STREAMS_BROKER_SSL_CERTFILE: client certificate (PEM) for TLS client authentication (mTLS).",
    )
    broker_ssl_keyfile: Path | None = Field(
        None,
        description="STREAMS_BROKER_SSL_KEYFILE: private key (PEM, unencrypted) of the client certificate. Only with STREAMS_BROKER_SSL_CERTFILE.",
    )
    web_token: SecretStr | None = Field(
        None,
        description="STREAMS_WEB_TOKEN: bearer token that `/relationships/*` requires (`Authorization: Bearer <token>`, else 401); workers send it when they route a query. Unset: state queries are open.",
    )
    web_token_file: Path | None = Field(
        None,
        description="STREAMS_WEB_TOKEN_FILE: file holding the token instead (a mounted secret; surrounding whitespace ignored). Not together with STREAMS_WEB_TOKEN.",
    )

    @model_validator(mode="after")
    def _row_ttl_beyond_dedup(self) -> Settings:
        if 0 < self.row_ttl_ms <= self.dedup_window_ms:
            raise ValueError(
                f"STREAMS_ROW_TTL_MS ({self.row_ttl_ms}) must be 0 or longer than "
                f"STREAMS_DEDUP_WINDOW_MS ({self.dedup_window_ms}) (SPEC v1.1 §2)"
            )
        return self

    @model_validator(mode="after")
    def _one_token_source(self) -> Settings:
        if self.web_token is not None and self.web_token_file is not None:
            raise ValueError("set STREAMS_WEB_TOKEN or STREAMS_WEB_TOKEN_FILE, not both")
        if self.web_token is not None and not self.web_token.get_secret_value().strip():
            raise ValueError("STREAMS_WEB_TOKEN is empty")
        return self

    @model_validator(mode="after")
    def _min_insync_within_replicas(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"STREAMS_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must be at most "
                f"STREAMS_REPLICATION_FACTOR ({self.replication_factor}): no write could succeed"
            )
        return self

    @model_validator(mode="after")
    def _client_key_with_its_certificate(self) -> Settings:
        if self.broker_ssl_keyfile is not None and self.broker_ssl_certfile is None:
            raise ValueError(
                "STREAMS_BROKER_SSL_KEYFILE needs STREAMS_BROKER_SSL_CERTFILE (the certificate it belongs to)"
            )
        return self

    def resolved_web_token(self) -> str | None:
        """The state-query token, read from `web_token_file` if that is set; None when queries are open.

        >>> Settings(web_token="s3cret").resolved_web_token()
        's3cret'
        """
        if self.web_token_file is not None:
            token = self.web_token_file.read_text(encoding="utf-8").strip()
            if not token:
                raise ValueError(f"STREAMS_WEB_TOKEN_FILE {self.web_token_file} is empty")
            return token
        return None if self.web_token is None else self.web_token.get_secret_value().strip()

    def threshold_bounds(self) -> tuple[int, int]:
        """The (min, max) silence clamps, in ms."""
        return self.min_silence_ms, self.max_silence_ms

    def weights(self) -> tuple[float, float, float]:
        """Strength weights indexed like `INTERACTION_TYPES`."""
        return self.weight_mention, self.weight_reply, self.weight_like

    @property
    def exactly_once(self) -> bool:
        """`processing_guarantee` is `exactly_once` (Kafka transactions)."""
        return self.processing_guarantee == "exactly_once"

    def idle_claim_ms(self) -> int:
        """How long (record time) an owner partition trusts an idleness claim not repeated: four heartbeats."""
        return 4 * self.tick_interval_ms

    def idle_judgement_max_age_ms(self) -> int:
        """How old the end offsets an idleness claim rests on may be (asked that long ago at most): two heartbeats."""
        return 2 * self.tick_interval_ms

    def replication_configs(self) -> dict[str, str]:
        """Topic configs every topic the service creates gets (`min.insync.replicas`).

        >>> Settings(replication_factor=3, min_insync_replicas=2).replication_configs()
        {'min.insync.replicas': '2'}
        """
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    def input_topics(self) -> tuple[str, str, str]:
        """The three input topic names."""
        return self.topic_mentions, self.topic_replies, self.topic_likes

    def source_topics(self) -> tuple[str, ...]:
        """The topics the ingest stage reads and the watermark waits for: the input and the control topics."""
        return (*self.input_topics(), *self.control_topics())

    def control_topics(self) -> tuple[str, str]:
        """Topics of requests, not events (erasures, feedback): quiet once caught up; their times move no
        watermark on when every source is idle."""
        return self.topic_erasures, self.topic_feedback


def deployment_env(app_id: str, partitions: int, **overrides: object) -> dict[str, str]:
    """`STREAMS_*` variables of a deployment whose topics are named after its app id, on the event clock.

    What tests and benchmarks give the worker processes they start; `overrides`
    are settings fields (`idle_timeout_ms=2000`).
    """
    env = {
        "STREAMS_APP_ID": app_id,
        "STREAMS_PARTITIONS": str(partitions),
        "STREAMS_TOPIC_MENTIONS": f"{app_id}.mentions",
        "STREAMS_TOPIC_REPLIES": f"{app_id}.replies",
        "STREAMS_TOPIC_LIKES": f"{app_id}.likes",
        "STREAMS_TOPIC_ALERTS": f"{app_id}.alerts",
        "STREAMS_TOPIC_DEAD_LETTER": f"{app_id}.dead-letter",
        "STREAMS_TOPIC_ERASURES": f"{app_id}.erasures",
        "STREAMS_TOPIC_DIGESTS": f"{app_id}.digests",
        "STREAMS_TOPIC_FEEDBACK": f"{app_id}.feedback",
        "STREAMS_CLOCK": "event",
    }
    env.update({f"STREAMS_{name.upper()}": str(value) for name, value in overrides.items()})
    return env


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings a worker started with `env` reads from its `STREAMS_*` variables."""
    prefix = "STREAMS_"
    return Settings.model_validate(
        {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    )
