//! `streams_core`: the offline replay's per-line work in compiled code, called once per batch.
//!
//! `CompiledReplay` does what `streams.replay.replay` does: blank lines are
//! skipped, the rest decoded (a fast path for clean records, the Python
//! `decode_event` for anything else), self-interactions counted, the two row
//! updates of each event offered to the engine and the watermark advanced.

mod decode;
mod engine;
mod rowcodec;

use std::collections::BTreeMap;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use decode::{decode_fast, is_blank, strip_line_end};
use engine::{Alert, Engine, EventId, HeldFeedback, Rules, Update, IN, MUTE, OUT, SNOOZE, UNMUTE};

const INTERACTION_TYPES: [&str; 3] = ["mention", "reply", "like"];
/// The settings tuple's first 12 values (a tuple extracts in one piece up to 12).
type FirstSettings = ((f64, f64, f64), i64, i64, usize, i64, bool, f64, i64, i64, i64, i64, usize);
/// Settings beyond this are refused: every ms value must convert to a float exactly.
const MAX_EXACT_MS: i64 = 1 << 53;

/// The decoded event of a line the fast path left to Python.
struct Decoded {
    id: String,
    kind: u8,
    actor: String,
    target: String,
    ts: i64,
}

/// Replay of JSON-lines events: `feed` batches of lines, then `finish`; both return alerts as dicts.
#[pyclass(module = "streams_core")]
struct CompiledReplay {
    engine: Engine,
    /// `fallback(raw) -> (id, type, actor, target, ts) | reason`: the reference decoder.
    fallback: Py<PyAny>,
    lateness: i64,
    max_bytes: usize,
    max_ts: i64,
    /// Largest rise of `max_ts` by one valid event (`ReplaySummary.watermark_max_jump_ms`).
    max_jump: i64,
    read: u64,
    self_interactions: u64,
    invalid: BTreeMap<String, u64>,
    fast_decoded: u64,
    finished: bool,
    /// Python strings of the interned user names, made on first use in an alert.
    user_strings: Vec<Option<Py<PyString>>>,
    /// Dicts with an alert's keys (and a counts dict's), copied to build each alert.
    alert_template: Py<PyDict>,
    counts_template: Py<PyDict>,
}

const ALERT_KEYS: [&str; 15] = [
    "alert_id",
    "kind",
    "owner_id",
    "contact_id",
    "last_interaction_at",
    "dormant_since",
    "detected_at",
    "typical_gap_ms",
    "threshold_ms",
    "touches",
    "counts",
    "last_out_at",
    "last_in_at",
    "strength",
    "schema_version",
];

fn template<'py>(py: Python<'py>, keys: &[&str]) -> PyResult<Py<PyDict>> {
    let dict = PyDict::new(py);
    for key in keys {
        dict.set_item(PyString::intern(py, key), py.None())?;
    }
    Ok(dict.unbind())
}

fn exact_ms(name: &str, value: i64) -> PyResult<i64> {
    if (0..MAX_EXACT_MS).contains(&value) {
        Ok(value)
    } else {
        Err(PyValueError::new_err(format!("{name} must be in [0, 2**53): {value}")))
    }
}

#[pymethods]
impl CompiledReplay {
    /// `settings`: (weights (mention, reply, like), half_life_ms, touch_merge_ms, gap_window,
    /// min_touches, require_mutual, k, min_silence_ms, max_silence_ms, dedup_window_ms,
    /// allowed_lateness_ms, max_record_bytes, row_ttl_ms, rule is adaptive).
    #[new]
    fn new(py: Python<'_>, settings: &Bound<'_, PyTuple>, fallback: Py<PyAny>) -> PyResult<Self> {
        if settings.len() != 14 {
            return Err(PyValueError::new_err(format!("settings: 14 values, not {}", settings.len())));
        }
        let row_ttl: i64 = settings.get_item(12)?.extract()?;
        let adaptive: bool = settings.get_item(13)?.extract()?;
        let settings: FirstSettings = settings.get_slice(0, 12).extract()?;
        let (
            weights,
            half_life,
            touch_merge,
            gap_window,
            min_touches,
            require_mutual,
            k,
            min_silence,
            max_silence,
            dedup_window,
            lateness,
            max_bytes,
        ) = settings;
        let rules = Rules {
            weights: [weights.0, weights.1, weights.2],
            half_life: exact_ms("half_life_ms", half_life)? as f64,
            touch_merge: exact_ms("touch_merge_ms", touch_merge)?,
            gap_window,
            min_touches,
            require_mutual,
            k,
            adaptive,
            min_silence: exact_ms("min_silence_ms", min_silence)?,
            max_silence: exact_ms("max_silence_ms", max_silence)?,
            dedup_window: exact_ms("dedup_window_ms", dedup_window)?,
        };
        let row_ttl = exact_ms("row_ttl_ms", row_ttl)?;
        if row_ttl != 0 && row_ttl <= rules.dedup_window {
            return Err(PyValueError::new_err(format!(
                "row_ttl_ms must be 0 or longer than dedup_window_ms ({}): {row_ttl}",
                rules.dedup_window
            )));
        }
        Ok(CompiledReplay {
            engine: Engine::new(rules, row_ttl),
            fallback,
            lateness: exact_ms("allowed_lateness_ms", lateness)?,
            max_bytes,
            max_ts: i64::MIN,
            max_jump: 0,
            read: 0,
            self_interactions: 0,
            invalid: BTreeMap::new(),
            fast_decoded: 0,
            finished: false,
            user_strings: Vec::new(),
            alert_template: template(py, &ALERT_KEYS)?,
            counts_template: template(py, &INTERACTION_TYPES)?,
        })
    }

    /// Replay a batch of lines (bytes, line ends allowed); the alerts emitted meanwhile, in order.
    fn feed<'py>(&mut self, py: Python<'py>, lines: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        if self.finished {
            return Err(PyRuntimeError::new_err("feed after finish"));
        }
        for item in lines.iter() {
            let bytes = item.cast::<PyBytes>()?;
            self.line(py, bytes.as_bytes())?;
        }
        self.take_alerts(py)
    }

    /// Forget `user` as of event time `ts` (docs/semantics.md §9): applied once the watermark
    /// reaches `ts` (at once if it has), or at `finish`; an erasure given again changes nothing.
    /// The alerts emitted meanwhile (none: an erasure fires nothing).
    fn erase<'py>(&mut self, py: Python<'py>, user: &str, ts: i64) -> PyResult<Bound<'py, PyList>> {
        self.engine.erase(user, ts);
        self.take_alerts(py)
    }

    /// Mute (1), unmute (0) or snooze (2, until `until`) the row `(owner, contact)` as of event time
    /// `ts` (docs/semantics.md §11): applied once the watermark reaches `ts`, in `ts` order with the
    /// events, or at once, as of the watermark, if it has. The alerts emitted meanwhile (a release).
    fn give_feedback<'py>(
        &mut self,
        py: Python<'py>,
        owner: &str,
        contact: &str,
        action: i64,
        until: i64,
        ts: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        if ![UNMUTE, MUTE, SNOOZE].contains(&action) {
            return Err(PyValueError::new_err(format!("unknown feedback action {action}")));
        }
        let until = if action == SNOOZE { until } else { 0 };
        self.engine.give_feedback(HeldFeedback {
            ts,
            owner: owner.into(),
            contact: contact.into(),
            action,
            until,
        });
        self.take_alerts(py)
    }

    /// End of input: apply everything held, then the erasures still waiting; the last alerts.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        if !self.finished {
            self.finished = true;
            let end = self.max_ts.max(self.engine.max_ts);
            self.engine.advance(end, true);
        }
        self.engine.finish_erasures();
        self.take_alerts(py)
    }

    /// The `ReplaySummary` counts and engine counters, as a dict.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = &self.engine.stats;
        let out = PyDict::new(py);
        out.set_item("read", self.read)?;
        out.set_item("applied", stats.applied)?;
        out.set_item("invalid", self.invalid.clone())?;
        out.set_item("duplicates", stats.duplicates)?;
        out.set_item("self_interactions", self.self_interactions)?;
        out.set_item("late", stats.late)?;
        out.set_item("dormant", stats.dormant)?;
        out.set_item("revived", stats.revived)?;
        out.set_item("redelivered", stats.redelivered)?;
        out.set_item("established_rows", self.engine.established_rows)?;
        out.set_item("dormant_rows", self.engine.dormant_rows)?;
        out.set_item("live_deadlines", self.engine.live_deadlines())?;
        out.set_item("rows_reset", stats.rows_reset)?;
        out.set_item("rows_reclaimed", stats.rows_reclaimed)?;
        out.set_item("rows_erased", stats.rows_erased)?;
        out.set_item("erased_events", stats.erased_events)?;
        out.set_item("feedback_applied", stats.feedback)?;
        out.set_item("withheld", stats.withheld)?;
        out.set_item("live_rows", self.engine.live_rows())?;
        out.set_item("row_slots", self.engine.rows.len())?;
        out.set_item("live_expiries", self.engine.live_expiries())?;
        out.set_item("watermark_max_jump_ms", self.max_jump)?;
        out.set_item("watermark", self.engine.watermark)?;
        out.set_item("fast_decoded", self.fast_decoded)?;
        Ok(out)
    }

    /// Every row as `(owner, contact, fields)`, `fields` in `Row.to_bytes` order (recent as `[id, ts, pos]`).
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names = &self.engine.users.names;
        let out = PyList::empty(py);
        for row in self.engine.rows.iter().filter(|row| !row.vacant) {
            let recent = PyList::empty(py);
            for entry in row.recent.iter() {
                recent.append((entry.id.as_str(), entry.ts, entry.pos))?;
            }
            let fields = (
                row.counts.to_vec(),
                row.first_at,
                row.last_at,
                row.last_out_at.get(),
                row.last_in_at.get(),
                row.touch_at,
                row.touches,
                row.gaps.clone(),
                row.strength,
                row.dormant_since.get(),
                recent,
            );
            out.append((&*names[row.owner as usize], &*names[row.contact as usize], fields))?;
        }
        Ok(out)
    }

    /// Live deadlines as `(owner, contact, deadline)` (the reference's `DeadlineIndex` content).
    fn deadlines<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names = &self.engine.users.names;
        let out = PyList::empty(py);
        for row in self.engine.rows.iter().filter(|row| !row.vacant) {
            if let Some(deadline) = row.live_deadline.get() {
                out.append((&*names[row.owner as usize], &*names[row.contact as usize], deadline))?;
            }
        }
        Ok(out)
    }

    /// Feedback state as `(owner, contact, fields)`, `fields` in `RowFeedback.to_json` order.
    fn feedback_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names = &self.engine.users.names;
        let out = PyList::empty(py);
        for (&key, entry) in &self.engine.feedback {
            let fields = (
                entry.muted,
                entry.mute_key.0,
                entry.mute_key.1,
                entry.snoozed_until.get(),
                entry.snooze_key.0,
                entry.snooze_key.1,
                entry.withheld,
            );
            out.append((&*names[(key >> 32) as usize], &*names[key as u32 as usize], fields))?;
        }
        Ok(out)
    }

    /// Live expiries as `(owner, contact, expiry)` (the reference's `expiries` content, `row_ttl` only).
    fn expiries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names = &self.engine.users.names;
        let out = PyList::empty(py);
        for row in self.engine.rows.iter().filter(|row| !row.vacant) {
            if let Some(expiry) = row.live_expiry.get() {
                out.append((&*names[row.owner as usize], &*names[row.contact as usize], expiry))?;
            }
        }
        Ok(out)
    }
}

impl CompiledReplay {
    fn line(&mut self, py: Python<'_>, line: &[u8]) -> PyResult<()> {
        if is_blank(line) {
            return Ok(());
        }
        self.read += 1;
        let raw = strip_line_end(line);
        let fast = if raw.len() <= self.max_bytes { decode_fast(raw) } else { None };
        let slow;
        let (id, kind, actor, target, ts) = match fast {
            Some(event) => {
                self.fast_decoded += 1;
                (event.id, event.kind, event.actor, event.target, event.ts)
            }
            None => match self.decode_slow(py, raw)? {
                Ok(decoded) => {
                    slow = decoded;
                    (slow.id.as_str(), slow.kind, slow.actor.as_str(), slow.target.as_str(), slow.ts)
                }
                Err(reason) => {
                    *self.invalid.entry(reason).or_insert(0) += 1;
                    return Ok(());
                }
            },
        };
        if ts > self.max_ts {
            if self.max_ts != i64::MIN && ts - self.max_ts > self.max_jump {
                self.max_jump = ts - self.max_ts;
            }
            self.max_ts = ts;
        }
        let engine = &mut self.engine;
        if actor == target {
            self.self_interactions += 1;
        } else {
            Self::offer_event(engine, id, kind, actor, target, ts, self.read as i64);
        }
        let mark = self.max_ts - self.lateness;
        if mark > engine.watermark {
            engine.advance(mark, false);
        }
        Ok(())
    }

    /// The two row updates of one event, offered to the engine.
    fn offer_event(
        engine: &mut Engine,
        id: &str,
        kind: u8,
        actor: &str,
        target: &str,
        ts: i64,
        position: i64,
    ) {
        let owner = engine.users.intern(actor);
        let contact = engine.users.intern(target);
        let id_hash = engine::id_hash(id);
        let out = Update {
            ts,
            event_id: EventId::new(id),
            id_hash,
            owner,
            contact,
            direction: OUT,
            kind,
            tag: 0,
            pos: position,
        };
        let back =
            Update { event_id: out.event_id.clone(), owner: contact, contact: owner, direction: IN, ..out };
        // same ts and id: the owners' names order the two halves (actor != target here)
        engine.offer_pair(out, back, actor < target);
    }

    /// The reference decoder's verdict: the event, or the reason code of a dead letter.
    fn decode_slow(&self, py: Python<'_>, raw: &[u8]) -> PyResult<Result<Decoded, String>> {
        let result = self.fallback.bind(py).call1((PyBytes::new(py, raw),))?;
        if let Ok(reason) = result.cast::<PyString>() {
            return Ok(Err(reason.to_str()?.to_owned()));
        }
        let (id, kind, actor, target, ts): (String, u8, String, String, i64) = result.extract()?;
        Ok(Ok(Decoded { id, kind, actor, target, ts }))
    }

    fn take_alerts<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let alerts = std::mem::take(&mut self.engine.alerts);
        // No collection while the batch's alerts are built: they hold no cycles, and a collection
        // here would only walk (and promote) the alerts built so far. No Python code runs meanwhile.
        let collecting = unsafe { pyo3::ffi::PyGC_Disable() } == 1;
        let built = (|| {
            let out = PyList::empty(py);
            for alert in &alerts {
                out.append(self.alert_dict(py, alert)?)?;
            }
            Ok(out)
        })();
        if collecting {
            unsafe { pyo3::ffi::PyGC_Enable() };
        }
        built
    }

    fn user_string<'py>(&mut self, py: Python<'py>, user: u32) -> Bound<'py, PyString> {
        let index = user as usize;
        if self.user_strings.len() <= index {
            self.user_strings.resize_with(self.engine.users.names.len().max(index + 1), || None);
        }
        let names = &self.engine.users.names;
        self.user_strings[index]
            .get_or_insert_with(|| PyString::new(py, &names[index]).unbind())
            .bind(py)
            .clone()
    }

    /// Exactly `make_alert`'s dict (same keys, same order, same types).
    fn alert_dict<'py>(&mut self, py: Python<'py>, alert: &Alert) -> PyResult<Bound<'py, PyDict>> {
        let owner_string = self.user_string(py, alert.owner);
        let contact_string = self.user_string(py, alert.contact);
        let names = &self.engine.users.names;
        let owner = &*names[alert.owner as usize];
        let contact = &*names[alert.contact as usize];
        let (kind, kind_string) = if alert.revived {
            ("revived", intern!(py, "revived"))
        } else {
            ("dormant", intern!(py, "dormant"))
        };
        let counts_template = self.counts_template.bind(py);
        let counts = |start: usize| -> PyResult<Bound<'py, PyDict>> {
            let side = counts_template.copy()?;
            side.set_item(intern!(py, "mention"), alert.counts[start])?;
            side.set_item(intern!(py, "reply"), alert.counts[start + 1])?;
            side.set_item(intern!(py, "like"), alert.counts[start + 2])?;
            Ok(side)
        };
        let both = PyDict::new(py);
        both.set_item(intern!(py, "out"), counts(0)?)?;
        both.set_item(intern!(py, "in"), counts(3)?)?;
        let out = self.alert_template.bind(py).copy()?;
        out.set_item(intern!(py, "alert_id"), format!("{kind}:{owner}:{contact}:{}", alert.last_at))?;
        out.set_item(intern!(py, "kind"), kind_string)?;
        out.set_item(intern!(py, "owner_id"), owner_string)?;
        out.set_item(intern!(py, "contact_id"), contact_string)?;
        out.set_item(intern!(py, "last_interaction_at"), alert.last_at)?;
        out.set_item(intern!(py, "dormant_since"), alert.dormant_since)?;
        out.set_item(intern!(py, "detected_at"), alert.detected_at)?;
        out.set_item(intern!(py, "typical_gap_ms"), alert.typical_gap)?;
        out.set_item(intern!(py, "threshold_ms"), alert.threshold)?;
        out.set_item(intern!(py, "touches"), alert.touches)?;
        out.set_item(intern!(py, "counts"), both)?;
        out.set_item(intern!(py, "last_out_at"), alert.last_out_at)?;
        out.set_item(intern!(py, "last_in_at"), alert.last_in_at)?;
        out.set_item(intern!(py, "strength"), alert.strength)?;
        out.set_item(intern!(py, "schema_version"), 1)?;
        if let Some(released_at) = alert.released_at {
            out.set_item(intern!(py, "released_at"), released_at)?;
        }
        Ok(out)
    }
}

/// `decode_fast(raw)`: `(id, type, actor, target, ts)` of a clean valid record, else None (the reference decides).
#[pyfunction]
fn decode_fast_path(raw: &[u8]) -> Option<(String, u8, String, String, i64)> {
    decode_fast(raw).map(|e| (e.id.to_owned(), e.kind, e.actor.to_owned(), e.target.to_owned(), e.ts))
}

#[pymodule]
fn streams_core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<CompiledReplay>()?;
    module.add_function(wrap_pyfunction!(decode_fast_path, module)?)?;
    module.add_function(wrap_pyfunction!(rowcodec::encode_rows, module)?)?;
    module.add_function(wrap_pyfunction!(rowcodec::decode_row, module)?)?;
    Ok(())
}
