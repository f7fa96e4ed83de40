//! Row format version 1 (`streams.engine.row.Row.to_bytes` / `from_bytes`) in compiled code.
//!
//! `encode_rows` writes exactly the bytes of the reference `Row.to_bytes` and raises
//! `ValueError` where it does. `decode_row` reads only clean version-1 rows whose varints fit
//! 63 bits; for anything else (another version, corrupt or truncated bytes, non-UTF-8 ids) it
//! returns `None` and the caller decodes with the reference, so errors are the reference's.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

const VERSION: u8 = 1;
const HAS_LAST_OUT: u8 = 1;
const HAS_LAST_IN: u8 = 2;
const HAS_DORMANT: u8 = 4;
const STRENGTH_IS_INT: u8 = 8;
const HAS_RECENT: u8 = 16;
const KNOWN_FLAGS: u8 = HAS_LAST_OUT | HAS_LAST_IN | HAS_DORMANT | STRENGTH_IS_INT | HAS_RECENT;
const COUNTS: usize = 6;
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2**53
const HEAD: usize = 11; // version, flags, counts mask, last_at as int64

fn invalid(message: &str) -> PyErr {
    PyValueError::new_err(message.to_string())
}

fn zigzag(d: i128) -> u128 {
    if d >= 0 {
        (d as u128) << 1
    } else {
        !((d as u128) << 1)
    }
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn push_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Ints beyond this are left to the reference, so that no difference of two overflows.
const MAX_INT: i128 = 1 << 125;

/// An int field of a row, as Python would do arithmetic on it (within +-2**125).
fn int(value: &Bound<'_, PyAny>) -> PyResult<i128> {
    match value.extract::<i128>() {
        Ok(found) if (-MAX_INT..=MAX_INT).contains(&found) => Ok(found),
        _ => Err(invalid("row field is not an int within +-2**125")),
    }
}

/// A non-negative count pushed as is (the reference raises ValueError on a negative one).
fn unsigned(value: i128) -> PyResult<u128> {
    u128::try_from(value).map_err(|_| invalid("row count or touches is negative"))
}

/// `row.to_bytes()` for one row.
fn encode(py: Python<'_>, row: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut values: Vec<u128> = Vec::with_capacity(16);
    let mut mask: u8 = 0;
    let counts = row.getattr(intern!(py, "counts"))?;
    let counts = counts.cast::<PyList>().map_err(|_| invalid("row counts are not a list"))?;
    if counts.len() != COUNTS {
        return Err(invalid("row counts are not six values"));
    }
    for (i, count) in counts.iter().enumerate() {
        let count = int(&count)?;
        if count != 0 {
            mask |= 1 << i;
            values.push(unsigned(count)?);
        }
    }
    let last_at = int(&row.getattr(intern!(py, "last_at"))?)?;
    values.push(zigzag(last_at - int(&row.getattr(intern!(py, "first_at"))?)?));
    values.push(zigzag(last_at - int(&row.getattr(intern!(py, "touch_at"))?)?));
    let mut flags: u8 = 0;
    let last_out = row.getattr(intern!(py, "last_out_at"))?;
    if !last_out.is_none() {
        flags |= HAS_LAST_OUT;
        values.push(zigzag(last_at - int(&last_out)?));
    }
    let last_in = row.getattr(intern!(py, "last_in_at"))?;
    if !last_in.is_none() {
        flags |= HAS_LAST_IN;
        values.push(zigzag(last_at - int(&last_in)?));
    }
    let dormant = row.getattr(intern!(py, "dormant_since"))?;
    if !dormant.is_none() {
        flags |= HAS_DORMANT;
        values.push(zigzag(int(&dormant)? - last_at));
    }
    values.push(unsigned(int(&row.getattr(intern!(py, "touches"))?)?)?);
    let strength: f64 = row.getattr(intern!(py, "strength"))?.extract()?;
    let mut double: Option<f64> = None;
    if (0.0..MAX_EXACT_INT).contains(&strength) && strength.fract() == 0.0 && strength.is_sign_positive() {
        flags |= STRENGTH_IS_INT;
        values.push(strength as u128);
    } else {
        double = Some(strength);
    }
    let gaps = row.getattr(intern!(py, "gaps"))?;
    let gaps = gaps.cast::<PyList>().map_err(|_| invalid("row gaps are not a list"))?;
    values.push(gaps.len() as u128);
    for gap in gaps.iter() {
        values.push(zigzag(int(&gap)?));
    }
    let recent = row.getattr(intern!(py, "recent"))?;
    let recent = recent.cast::<PyDict>().map_err(|_| invalid("row recent ids are not a dict"))?;
    let mut ids: Vec<u8> = Vec::new();
    let mut first_position: Option<u64> = None;
    if !recent.is_empty() {
        flags |= HAS_RECENT;
        let mut previous: Option<(i128, i128)> = None;
        for (event_id, seen) in recent.iter() {
            let event_id = event_id.cast::<PyString>().map_err(|_| invalid("a recent id is not a str"))?;
            let encoded = event_id.to_str()?.as_bytes();
            if seen.len()? != 2 {
                return Err(invalid("a recent id's value is not [event time, input position]"));
            }
            let ts = int(&seen.get_item(0)?)?;
            let position = int(&seen.get_item(1)?)?;
            values.push(encoded.len() as u128);
            match previous {
                None => {
                    let first = u64::try_from(position)
                        .map_err(|_| invalid(&format!("input position {position} out of 0..2**64-1")))?;
                    first_position = Some(first);
                    values.push(zigzag(ts - last_at));
                }
                Some((previous_ts, previous_position)) => {
                    values.push(zigzag(ts - previous_ts));
                    values.push(zigzag(position - previous_position));
                }
            }
            ids.extend_from_slice(encoded);
            previous = Some((ts, position));
        }
    }
    let last_at = i64::try_from(last_at).map_err(|_| invalid("row field out of range: last_at"))?;
    let mut section: Vec<u8> = Vec::with_capacity(values.len() + 8);
    for value in values {
        push_varint(&mut section, value);
    }
    let mut out: Vec<u8> = Vec::with_capacity(HEAD + 8 + 8 + 2 + section.len() + ids.len());
    out.push(VERSION);
    out.push(flags);
    out.push(mask);
    out.extend_from_slice(&last_at.to_le_bytes());
    if let Some(strength) = double {
        out.extend_from_slice(&strength.to_le_bytes());
    }
    if let Some(position) = first_position {
        out.extend_from_slice(&position.to_le_bytes());
    }
    push_varint(&mut out, section.len() as u128);
    out.extend_from_slice(&section);
    out.extend_from_slice(&ids);
    Ok(out)
}

/// `[row.to_bytes() for row in rows]`.
#[pyfunction]
pub fn encode_rows<'py>(py: Python<'py>, rows: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for row in rows.iter() {
        out.append(PyBytes::new(py, &encode(py, &row)?))?;
    }
    Ok(out)
}

/// Reads a version-1 row; `None` for anything but a clean one.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let found = self.data.get(self.at..end)?;
        self.at = end;
        Some(found)
    }

    fn fixed8(&mut self) -> Option<[u8; 8]> {
        self.bytes(8)?.try_into().ok()
    }

    /// A varint of at most 9 bytes (63 bits): longer ones are left to the reference.
    fn varint(&mut self, end: usize) -> Option<u64> {
        let mut value: u64 = 0;
        for shift in (0..63).step_by(7) {
            if self.at >= end {
                return None;
            }
            let byte = self.data[self.at];
            self.at += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
}

struct Decoded<'a> {
    counts: [u64; COUNTS],
    first_at: i64,
    last_at: i64,
    last_out_at: Option<i64>,
    last_in_at: Option<i64>,
    touch_at: i64,
    touches: u64,
    gaps: Vec<i64>,
    strength: f64,
    dormant_since: Option<i64>,
    recent: Vec<(&'a str, i64, u64)>,
}

fn decode(data: &[u8]) -> Option<Decoded<'_>> {
    let mut r = Reader { data, at: 0 };
    let head = r.bytes(3)?;
    let (version, flags, mask) = (head[0], head[1], head[2]);
    if version != VERSION || flags & !KNOWN_FLAGS != 0 || mask >> COUNTS != 0 {
        return None;
    }
    let last_at = i64::from_le_bytes(r.fixed8()?);
    let mut strength = if flags & STRENGTH_IS_INT == 0 { f64::from_le_bytes(r.fixed8()?) } else { 0.0 };
    let mut position: u64 = if flags & HAS_RECENT != 0 { u64::from_le_bytes(r.fixed8()?) } else { 0 };
    let size = usize::try_from(r.varint(data.len())?).ok()?;
    let end = r.at.checked_add(size)?;
    if end > data.len() {
        return None;
    }
    let offset = |base: i64, z: u64| base.checked_sub(unzigzag(z));
    let mut counts = [0u64; COUNTS];
    for (i, count) in counts.iter_mut().enumerate() {
        if mask >> i & 1 == 1 {
            *count = r.varint(end)?;
        }
    }
    let first_at = offset(last_at, r.varint(end)?)?;
    let touch_at = offset(last_at, r.varint(end)?)?;
    let last_out_at = if flags & HAS_LAST_OUT != 0 { Some(offset(last_at, r.varint(end)?)?) } else { None };
    let last_in_at = if flags & HAS_LAST_IN != 0 { Some(offset(last_at, r.varint(end)?)?) } else { None };
    let dormant_since =
        if flags & HAS_DORMANT != 0 { Some(last_at.checked_add(unzigzag(r.varint(end)?))?) } else { None };
    let touches = r.varint(end)?;
    if flags & STRENGTH_IS_INT != 0 {
        let value = r.varint(end)?;
        if value >= 1 << 53 {
            return None; // the reference makes a float of any int; only exact ones here
        }
        strength = value as f64;
    }
    let n_gaps = usize::try_from(r.varint(end)?).ok()?;
    if n_gaps > size {
        return None;
    }
    let mut gaps = Vec::with_capacity(n_gaps);
    for _ in 0..n_gaps {
        gaps.push(unzigzag(r.varint(end)?));
    }
    let mut recent = Vec::new();
    let mut ids_at = end;
    if flags & HAS_RECENT != 0 {
        let mut ts = last_at;
        let mut first = true;
        // the recent ids take every value left: (length, time delta[, position delta]) each
        while r.at < end || first {
            let length = usize::try_from(r.varint(end)?).ok()?;
            ts = ts.checked_add(unzigzag(r.varint(end)?))?;
            if !first {
                let delta = unzigzag(r.varint(end)?);
                position = u64::try_from(i128::from(position) + i128::from(delta)).ok()?;
            }
            first = false;
            let id_end = ids_at.checked_add(length)?;
            let id = std::str::from_utf8(data.get(ids_at..id_end)?).ok()?;
            ids_at = id_end;
            recent.push((id, ts, position));
        }
    }
    if r.at != end || ids_at != data.len() {
        return None;
    }
    if recent.len() > 1 {
        // a repeated id: the reference's dict keeps the last; leave such bytes to it
        let mut ids: Vec<&str> = recent.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            return None;
        }
    }
    Some(Decoded {
        counts,
        first_at,
        last_at,
        last_out_at,
        last_in_at,
        touch_at,
        touches,
        gaps,
        strength,
        dormant_since,
        recent,
    })
}

/// `row_class(...)` built from version-1 bytes, or `None` when the reference must decode them.
#[pyfunction]
pub fn decode_row<'py>(
    py: Python<'py>,
    row_class: &Bound<'py, PyAny>,
    data: &[u8],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(row) = decode(data) else {
        return Ok(None);
    };
    let recent = PyDict::new(py);
    for (id, ts, position) in &row.recent {
        recent.set_item(id, PyList::new(py, [i128::from(*ts), i128::from(*position)])?)?;
    }
    let found = row_class.call1((
        PyList::new(py, row.counts)?,
        row.first_at,
        row.last_at,
        row.last_out_at,
        row.last_in_at,
        row.touch_at,
        row.touches,
        PyList::new(py, row.gaps)?,
        row.strength,
        row.dormant_since,
        recent,
    ))?;
    Ok(Some(found))
}
