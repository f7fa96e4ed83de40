//! The relationship engine, step for step as `streams/engine/engine.py` (the executable reference).
//!
//! Rows are indexed by number; owners and contacts are interned user numbers.
//! Floating-point steps follow `streams/engine/rules.py` in the same order, so
//! strengths and thresholds are bit-identical to the reference's.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

pub const NO_WATERMARK: i64 = i64::MIN;
/// Ids a row remembers beyond the de-duplication window (`REMEMBER_AT_LEAST`).
pub const REMEMBER_AT_LEAST: usize = 32;
pub const OUT: u8 = 0;
pub const IN: u8 = 1;
/// Feedback actions (`Action`); the value orders same-`ts` feedback on one row.
pub const UNMUTE: i64 = 0;
pub const MUTE: i64 = 1;
pub const SNOOZE: i64 = 2;

/// Multiply-rotate hash for row keys (two interned user numbers packed in a u64).
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type KeyMap = HashMap<u64, u32, BuildHasherDefault<KeyHasher>>;

/// A quick hash of an event id: `recent` compares it before the id itself.
pub fn id_hash(id: &str) -> u64 {
    let mut hasher = KeyHasher::default();
    hasher.write(id.as_bytes());
    hasher.finish()
}

/// An event id: short ones (most) inline, so a row's `recent` entries need no allocation.
#[derive(Clone)]
pub enum EventId {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl EventId {
    pub fn new(id: &str) -> EventId {
        if id.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            EventId::Inline { len: id.len() as u8, bytes }
        } else {
            EventId::Heap(id.into())
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            // built from a whole &str in `new`
            EventId::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..usize::from(*len)])
            },
            EventId::Heap(id) => id,
        }
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventId {}

impl std::hash::Hash for EventId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// What `Settings` the engine needs (as `Rules`).
#[derive(Clone, Debug)]
pub struct Rules {
    pub weights: [f64; 3],
    pub half_life: f64,
    pub touch_merge: i64,
    pub gap_window: usize,
    pub min_touches: i64,
    pub require_mutual: bool,
    pub k: f64,
    /// Rule `adaptive` (docs/semantics.md §3) rather than `v1`.
    pub adaptive: bool,
    pub min_silence: i64,
    pub max_silence: i64,
    pub dedup_window: i64,
}

impl Rules {
    /// `2^(-elapsed / half_life)`, as `math.exp2(-elapsed_ms / self.half_life)`.
    #[inline]
    pub fn decay(&self, elapsed: i64) -> f64 {
        (-(elapsed as f64) / self.half_life).exp2()
    }

    pub fn established(&self, row: &Row) -> bool {
        if row.touches < self.min_touches {
            return false;
        }
        if !self.require_mutual {
            return true;
        }
        let c = &row.counts;
        (c[0] != 0 || c[1] != 0 || c[2] != 0) && (c[3] != 0 || c[4] != 0 || c[5] != 0)
    }

    /// Median of the gaps as `statistics.median`: an int for an odd count, a float for an even one.
    pub fn typical_gap(gaps: &[i64]) -> f64 {
        let count = gaps.len();
        if count == 0 {
            return 0.0;
        }
        let mut small = [0i64; 16];
        let mut large = Vec::new();
        let ordered: &mut [i64] = if count <= small.len() {
            small[..count].copy_from_slice(gaps);
            &mut small[..count]
        } else {
            large.extend_from_slice(gaps);
            &mut large
        };
        ordered.sort_unstable();
        let middle = count / 2;
        if count % 2 == 1 {
            return ordered[middle] as f64;
        }
        (ordered[middle - 1] + ordered[middle]) as f64 / 2.0
    }

    /// `floor(min(max(k * typical_gap, min_silence), max_silence))` with Python's `max`/`min` picks;
    /// under rule `adaptive` `k * typical_gap` is first raised to the shrunk longest gap.
    pub fn threshold(&self, gaps: &[i64]) -> i64 {
        self.threshold_of(gaps, Self::typical_gap(gaps))
    }

    /// `threshold` from an already computed typical gap.
    pub fn threshold_of(&self, gaps: &[i64], typical_gap: f64) -> i64 {
        let mut scaled = self.k * typical_gap;
        let low = self.min_silence as f64;
        let high = self.max_silence as f64;
        if self.adaptive {
            // `(n * 2 * max(gaps) + 2 * min_silence) // (n + 2)`, exact in i128 as Python's ints
            let count = gaps.len() as i128;
            let longest = gaps.iter().copied().max().unwrap_or(0) as i128;
            let spread = (count * 2 * longest + 2 * i128::from(self.min_silence)).div_euclid(count + 2);
            if spread >= 1 << 53 {
                return self.max_silence; // above every clamp (max_silence < 2**53); Python's compare is exact
            }
            let spread = spread as f64; // exact below 2**53, so the compare below is Python's
            if spread > scaled {
                scaled = spread;
            }
        }
        let at_least = if low > scaled { low } else { scaled };
        let clamped = if high < at_least { high } else { at_least };
        clamped.floor() as i64
    }
}

/// One id a row has applied: `[event time, input position]` in the reference.
#[derive(Clone, Debug)]
pub struct Recent {
    pub id: EventId,
    pub ts: i64,
    pub pos: i64,
}

/// An optional time in ms in one word: `i64::MIN` (no time the engine stores can be that) is none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptMs(i64);

impl OptMs {
    pub const NONE: OptMs = OptMs(i64::MIN);

    #[inline]
    pub fn some(value: i64) -> OptMs {
        debug_assert!(value != i64::MIN);
        OptMs(value)
    }

    #[inline]
    pub fn get(self) -> Option<i64> {
        if self.0 == i64::MIN {
            None
        } else {
            Some(self.0)
        }
    }

    #[inline]
    pub fn is_some(self) -> bool {
        self.0 != i64::MIN
    }

    #[inline]
    pub fn is_none(self) -> bool {
        self.0 == i64::MIN
    }

    #[inline]
    pub fn is_none_or(self, check: impl FnOnce(i64) -> bool) -> bool {
        self.get().is_none_or(check)
    }

    #[inline]
    pub fn take(&mut self) -> Option<i64> {
        std::mem::replace(self, OptMs::NONE).get()
    }
}

impl std::fmt::Debug for OptMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// A row's remembered ids, insertion-ordered as the reference's dict. The first one is kept in
/// the row itself (most rows of a heavy-tailed stream see one event); more go to two deques:
/// the entries and, in the same order, each id's `id_hash` (low 32 bits), which a look-up scans.
#[derive(Clone, Debug, Default)]
pub enum Recents {
    #[default]
    Empty,
    One(Recent, u32),
    Many(VecDeque<Recent>, VecDeque<u32>),
}

impl Recents {
    pub fn len(&self) -> usize {
        match self {
            Recents::Empty => 0,
            Recents::One(..) => 1,
            Recents::Many(entries, _) => entries.len(),
        }
    }

    pub fn get(&self, at: usize) -> &Recent {
        match self {
            Recents::One(entry, _) if at == 0 => entry,
            Recents::Many(entries, _) => &entries[at],
            _ => panic!("no remembered id at {at}"),
        }
    }

    /// Where `id` is.
    fn find(&self, hash: u32, id: &str) -> Option<usize> {
        match self {
            Recents::Empty => None,
            Recents::One(entry, candidate) => (*candidate == hash && entry.id.as_str() == id).then_some(0),
            Recents::Many(entries, hashes) => {
                let (front, back) = hashes.as_slices();
                for (offset, hashes) in [(0, front), (front.len(), back)] {
                    for (at, &candidate) in hashes.iter().enumerate() {
                        if candidate == hash && entries[offset + at].id.as_str() == id {
                            return Some(offset + at);
                        }
                    }
                }
                None
            }
        }
    }

    fn remove(&mut self, at: usize) -> Recent {
        match std::mem::take(self) {
            Recents::One(entry, _) if at == 0 => entry,
            Recents::Many(mut entries, mut hashes) => {
                hashes.remove(at);
                let entry = entries.remove(at).expect("a remembered id at `at`");
                *self = Recents::Many(entries, hashes);
                entry
            }
            _ => panic!("no remembered id at {at}"),
        }
    }

    fn push_back(&mut self, entry: Recent, hash: u32) {
        match self {
            Recents::Empty => *self = Recents::One(entry, hash),
            Recents::One(..) => {
                let Recents::One(first, first_hash) = std::mem::take(self) else { unreachable!() };
                let mut entries = VecDeque::with_capacity(4);
                let mut hashes = VecDeque::with_capacity(4);
                entries.extend([first, entry]);
                hashes.extend([first_hash, hash]);
                *self = Recents::Many(entries, hashes);
            }
            Recents::Many(entries, hashes) => {
                entries.push_back(entry);
                hashes.push_back(hash);
            }
        }
    }

    fn front(&self) -> Option<&Recent> {
        match self {
            Recents::Empty => None,
            Recents::One(entry, _) => Some(entry),
            Recents::Many(entries, _) => entries.front(),
        }
    }

    fn pop_front(&mut self) {
        match self {
            Recents::Many(entries, hashes) => {
                entries.pop_front();
                hashes.pop_front();
            }
            _ => *self = Recents::Empty,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Recent> {
        let (one, many) = match self {
            Recents::Empty => (None, None),
            Recents::One(entry, _) => (Some(entry), None),
            Recents::Many(entries, _) => (None, Some(entries.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// One relationship row (SPEC §2); the serialised fields are the reference `Row`'s, in its order.
#[derive(Clone, Debug)]
pub struct Row {
    pub owner: u32,
    pub contact: u32,
    pub counts: [i64; 6],
    pub first_at: i64,
    pub last_at: i64,
    pub last_out_at: OptMs,
    pub last_in_at: OptMs,
    pub touch_at: i64,
    pub touches: i64,
    pub gaps: Vec<i64>,
    pub strength: f64,
    pub dormant_since: OptMs,
    pub recent: Recents,
    pub cached_threshold: OptMs,
    pub known_established: bool,
    /// Timer state (the reference's `DeadlineIndex._live` / `_queued` for this key).
    pub live_deadline: OptMs,
    pub queued_deadline: OptMs,
    /// The same for the reference's `expiries` index (only with `row_ttl`).
    pub live_expiry: OptMs,
    pub queued_expiry: OptMs,
    /// A free slot: its row was reclaimed (`row_ttl`); the slot waits in `Engine::free` for a new row.
    pub vacant: bool,
}

impl Row {
    fn first(owner: u32, contact: u32, ts: i64) -> Row {
        Row {
            owner,
            contact,
            counts: [0; 6],
            first_at: ts,
            last_at: ts,
            last_out_at: OptMs::NONE,
            last_in_at: OptMs::NONE,
            touch_at: ts,
            touches: 0,
            gaps: Vec::new(),
            strength: 0.0,
            dormant_since: OptMs::NONE,
            recent: Recents::Empty,
            cached_threshold: OptMs::NONE,
            known_established: false,
            live_deadline: OptMs::NONE,
            queued_deadline: OptMs::NONE,
            live_expiry: OptMs::NONE,
            queued_expiry: OptMs::NONE,
            vacant: false,
        }
    }

    /// What a reclaimed row's slot holds: nothing on the heap.
    fn vacant() -> Row {
        Row { vacant: true, ..Row::first(u32::MAX, u32::MAX, 0) }
    }
}

/// Half an event as one row sees it (`RowUpdate`).
#[derive(Clone, Debug)]
pub struct Update {
    pub ts: i64,
    pub event_id: EventId,
    /// `id_hash(event_id)`.
    pub id_hash: u64,
    pub owner: u32,
    pub contact: u32,
    pub direction: u8,
    pub kind: u8,
    pub tag: i64,
    pub pos: i64,
}

/// An alert's fields, captured when it is emitted (`make_alert`).
#[derive(Clone, Debug)]
pub struct Alert {
    pub revived: bool,
    pub owner: u32,
    pub contact: u32,
    pub last_at: i64,
    pub dormant_since: i64,
    pub detected_at: i64,
    pub typical_gap: i64,
    pub threshold: i64,
    pub touches: i64,
    pub counts: [i64; 6],
    pub last_out_at: Option<i64>,
    pub last_in_at: Option<i64>,
    pub strength: f64,
    /// A dormant alert feedback held back, let out at this event time (docs/semantics.md §11).
    pub released_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub applied: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub late: u64,
    pub dormant: u64,
    pub revived: u64,
    pub rows_reset: u64,
    pub rows_reclaimed: u64,
    /// Rows deleted by erasures (docs/semantics.md §9).
    pub rows_erased: u64,
    /// Events dropped: they name a user erased before they were applied (`out` halves).
    pub erased_events: u64,
    /// Feedback records that changed a row's feedback state (docs/semantics.md §11).
    pub feedback: u64,
    /// Alerts not emitted because feedback muted or snoozed the row.
    pub withheld: u64,
}

/// What applied feedback says about one row (`RowFeedback`).
#[derive(Clone, Debug)]
pub struct RowFeedback {
    /// No alert of this row goes out.
    pub muted: bool,
    /// `(ts, action)` of the mute or unmute applied last.
    pub mute_key: (i64, i64),
    /// No dormant alert of this row goes out before this event time.
    pub snoozed_until: OptMs,
    /// `(ts, until)` of the snooze applied last.
    pub snooze_key: (i64, i64),
    /// The row's current dormant episode was not announced.
    pub withheld: bool,
}

impl Default for RowFeedback {
    fn default() -> RowFeedback {
        RowFeedback {
            muted: false,
            mute_key: (-1, -1),
            snoozed_until: OptMs::NONE,
            snooze_key: (-1, -1),
            withheld: false,
        }
    }
}

impl RowFeedback {
    /// No dormant alert may go out at event time `at`.
    pub fn silenced(&self, at: i64) -> bool {
        self.muted || self.snoozed_until.get().is_some_and(|until| at < until)
    }
}

/// Feedback waiting for the watermark (`HeldFeedback`): fields in the reference tuple's order, so
/// the derived order is the order the reference applies it in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldFeedback {
    pub ts: i64,
    pub owner: Box<str>,
    pub contact: Box<str>,
    pub action: i64,
    /// The snooze's end; 0 for a mute or an unmute.
    pub until: i64,
}

/// Interned user ids: number <-> name.
#[derive(Default)]
pub struct Users {
    /// Short names inline (`EventId` serves any short string): a look-up touches no other memory.
    numbers: HashMap<EventId, u32, BuildHasherDefault<KeyHasher>>,
    pub names: Vec<Box<str>>,
}

impl Users {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&number) = self.numbers.get(name) {
            return number;
        }
        let number = u32::try_from(self.names.len()).expect("more than 2^32 users");
        self.names.push(name.into());
        self.numbers.insert(EventId::new(name), number);
        number
    }
}

/// `RowUpdate` tuple order: (ts, event_id, owner, contact, direction, type, tag, pos).
fn update_less(a: &Update, b: &Update, names: &[Box<str>]) -> bool {
    use std::cmp::Ordering::{Equal, Less};
    let order =
        a.ts.cmp(&b.ts)
            .then_with(|| a.event_id.as_str().cmp(b.event_id.as_str()))
            .then_with(|| {
                if a.owner == b.owner {
                    Equal
                } else {
                    names[a.owner as usize].cmp(&names[b.owner as usize])
                }
            })
            .then_with(|| {
                if a.contact == b.contact {
                    Equal
                } else {
                    names[a.contact as usize].cmp(&names[b.contact as usize])
                }
            })
            .then_with(|| a.direction.cmp(&b.direction))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.tag.cmp(&b.tag))
            .then_with(|| a.pos.cmp(&b.pos));
    order == Less
}

/// Binary min-heap of held updates (the comparison needs the user names).
#[derive(Default)]
struct HeldHeap {
    items: Vec<Update>,
}

impl HeldHeap {
    fn first_ts(&self) -> Option<i64> {
        self.items.first().map(|u| u.ts)
    }

    fn push(&mut self, update: Update, names: &[Box<str>]) {
        let items = &mut self.items;
        items.push(update);
        let mut child = items.len() - 1;
        while child > 0 {
            let parent = (child - 1) / 2;
            if !update_less(&items[child], &items[parent], names) {
                break;
            }
            items.swap(child, parent);
            child = parent;
        }
    }

    fn pop(&mut self, names: &[Box<str>]) -> Option<Update> {
        let items = &mut self.items;
        if items.is_empty() {
            return None;
        }
        let top = items.swap_remove(0);
        let count = items.len();
        let mut parent = 0;
        loop {
            let left = 2 * parent + 1;
            if left >= count {
                break;
            }
            let right = left + 1;
            let smaller =
                if right < count && update_less(&items[right], &items[left], names) { right } else { left };
            if !update_less(&items[smaller], &items[parent], names) {
                break;
            }
            items.swap(smaller, parent);
            parent = smaller;
        }
        Some(top)
    }
}

/// Held updates in `RowUpdate` order: a sorted run for updates that arrive (nearly) in order,
/// and a heap for the rest; the next one is the smaller of the two heads.
#[derive(Default)]
struct Held {
    run: VecDeque<Update>,
    heap: HeldHeap,
}

/// How far back from the run's end an update may be placed before it goes to the heap instead.
const RUN_SEARCH: usize = 16;

impl Held {
    fn first_ts(&self) -> Option<i64> {
        match (self.run.front(), self.heap.first_ts()) {
            (Some(update), Some(ts)) => Some(update.ts.min(ts)),
            (Some(update), None) => Some(update.ts),
            (None, heap) => heap,
        }
    }

    /// Hold `update`; true when it went to the end of the run.
    fn push(&mut self, update: Update, names: &[Box<str>]) -> bool {
        let run = &mut self.run;
        let mut at = run.len();
        while at > 0 && run.len() - at < RUN_SEARCH && update_less(&update, &run[at - 1], names) {
            at -= 1;
        }
        if at == 0 || !update_less(&update, &run[at - 1], names) {
            let last = at == run.len();
            run.insert(at, update);
            last
        } else {
            self.heap.push(update, names);
            false
        }
    }

    fn pop(&mut self, names: &[Box<str>]) -> Option<Update> {
        let from_heap = match (self.run.front(), self.heap.items.first()) {
            (Some(run), Some(heap)) => update_less(heap, run, names),
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.heap.pop(names)
        } else {
            self.run.pop_front()
        }
    }
}

/// `DeadlineIndex`: a lazy min-heap of `(deadline, row)`; live/queued deadlines live in the rows.
#[derive(Default)]
struct Timers {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, u32)>>,
    queued: usize,
    live: usize,
}

pub struct Engine {
    pub rules: Rules,
    /// SPEC v1.1 §2 retention; 0: off.
    pub row_ttl: i64,
    /// `row_ttl + dedup_window`: a row not established is reclaimed this long after its `last_at`.
    reclaim_after: i64,
    pub users: Users,
    /// Row slots, vacant ones included (`Row::vacant`, listed in `free`).
    pub rows: Vec<Row>,
    keys: KeyMap,
    /// Vacant slots of `rows`, reused before `rows` grows.
    free: Vec<u32>,
    held: Held,
    timers: Timers,
    /// Rows not established, by when their storage may be reclaimed (`expiries`; only with `row_ttl`).
    expiries: Timers,
    pub watermark: i64,
    pub closed: bool,
    pub max_ts: i64,
    pub stats: Stats,
    pub alerts: Vec<Alert>,
    pub established_rows: u64,
    pub dormant_rows: u64,
    /// `(ts, user)` erasures waiting for the watermark to reach `ts` (`pending_erasures`). Of two
    /// at one `ts` either may go first: neither fires anything nor depends on the other.
    pending_erasures: BTreeSet<(i64, u32)>,
    /// User -> the `ts` of their erasure, once applied: every update naming them is dropped (`erased`).
    erased: HashMap<u32, i64, BuildHasherDefault<KeyHasher>>,
    /// Feedback waiting for the watermark to reach its `ts` (`held_feedback`).
    held_feedback: BinaryHeap<Reverse<HeldFeedback>>,
    /// Row key -> what applied feedback says about it (`feedback`); the row need not exist.
    pub feedback: HashMap<u64, RowFeedback, BuildHasherDefault<KeyHasher>>,
    /// `(until, row key)` of snoozes (`snooze_ends`), lazily: an entry is live while its row's
    /// `snoozed_until` is still `until`.
    snooze_ends: BinaryHeap<Reverse<(i64, u64)>>,
}

fn pack(owner: u32, contact: u32) -> u64 {
    (u64::from(owner) << 32) | u64::from(contact)
}

impl Engine {
    pub fn new(rules: Rules, row_ttl: i64) -> Engine {
        let reclaim_after = row_ttl + rules.dedup_window;
        Engine {
            rules,
            row_ttl,
            reclaim_after,
            users: Users::default(),
            rows: Vec::new(),
            keys: KeyMap::default(),
            free: Vec::new(),
            held: Held::default(),
            timers: Timers::default(),
            expiries: Timers::default(),
            watermark: NO_WATERMARK,
            closed: false,
            max_ts: NO_WATERMARK,
            stats: Stats::default(),
            alerts: Vec::new(),
            established_rows: 0,
            dormant_rows: 0,
            pending_erasures: BTreeSet::new(),
            erased: HashMap::default(),
            held_feedback: BinaryHeap::new(),
            feedback: HashMap::default(),
            snooze_ends: BinaryHeap::new(),
        }
    }

    /// Number of live deadlines (`len(DeadlineIndex)`).
    pub fn live_deadlines(&self) -> usize {
        self.timers.live
    }

    /// Number of live expiries (`len(expiries)`).
    pub fn live_expiries(&self) -> usize {
        self.expiries.live
    }

    /// Rows held now (slots less vacant ones).
    pub fn live_rows(&self) -> usize {
        self.rows.len() - self.free.len()
    }

    // --- inputs -----------------------------------------------------------

    pub fn offer(&mut self, update: Update) {
        self.max_ts = self.max_ts.max(update.ts);
        if update.ts < self.watermark {
            if !self.erased.is_empty() && self.names_erased(&update) {
                return;
            }
            if let Some(&index) = self.keys.get(&pack(update.owner, update.contact)) {
                match self.rows[index as usize].live_deadline.get() {
                    Some(deadline) if deadline <= update.ts => {
                        // overdue since a late event: fires first
                        self.discard(index);
                        self.fire(index, deadline);
                    }
                    _ => {}
                }
            }
            self.apply(update, true);
            return;
        }
        self.held.push(update, &self.users.names);
    }

    /// `offer(out)` then `offer(back)`, the two halves of one event (same ts and id); `out_first`:
    /// whether `out` comes before `back` in `RowUpdate` order. When the first of the two ends the
    /// held run, the other follows it there with no comparison (the user names need not be read).
    pub fn offer_pair(&mut self, out: Update, back: Update, out_first: bool) {
        if out.ts < self.watermark {
            self.offer(out);
            self.offer(back);
            return;
        }
        self.max_ts = self.max_ts.max(out.ts);
        let (first, second) = if out_first { (out, back) } else { (back, out) };
        if self.held.push(first, &self.users.names) {
            self.held.run.push_back(second);
        } else {
            self.held.push(second, &self.users.names);
        }
    }

    /// Forget `user` as of event time `ts` (docs/semantics.md §9): at once if the watermark has
    /// reached `ts`, else once it does; every update naming them applied afterwards is dropped.
    /// An erasure already waiting, or of a user already erased, changes nothing.
    pub fn erase(&mut self, user: &str, ts: i64) {
        let user = self.users.intern(user);
        if self.erased.contains_key(&user) || self.pending_erasures.contains(&(ts, user)) {
            return;
        }
        if ts <= self.watermark {
            self.erase_now(user, ts);
        } else {
            self.pending_erasures.insert((ts, user));
        }
    }

    /// Apply feedback once the watermark reaches its `ts` (docs/semantics.md §11); at once, as of
    /// the watermark, if it has. Of two on one row, the later `(ts, action, until)` wins.
    pub fn give_feedback(&mut self, feedback: HeldFeedback) {
        if feedback.ts <= self.watermark {
            let at = self.watermark;
            self.apply_feedback(feedback, at);
        } else {
            self.held_feedback.push(Reverse(feedback));
        }
    }

    /// End of input, after the last `advance`: the erasures still waiting apply, in `ts` order
    /// (feedback beyond the last event stays held: it could only change later alerts).
    pub fn finish_erasures(&mut self) {
        while let Some((ts, user)) = self.pending_erasures.pop_first() {
            self.erase_now(user, ts);
        }
    }

    pub fn advance(&mut self, watermark: i64, inclusive: bool) {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.closed = inclusive;
        } else if watermark == self.watermark {
            self.closed = self.closed || inclusive;
        }
        let limit = self.watermark;
        let inclusive = self.closed;
        let held_due = matches!(self.held.first_ts(), Some(ts) if ts <= limit);
        if !held_due && !self.any_timer_due(limit) && !self.control_due(limit) {
            if self.row_ttl != 0 && self.expiry_may_be_due(limit) {
                self.reclaim_due(limit);
            }
            return;
        }
        while let Some(ts) = self.held.first_ts() {
            if !(ts < limit || (inclusive && ts == limit)) {
                break;
            }
            let update = self.held.pop(&self.users.names).expect("held is not empty");
            if self.control_due(update.ts) {
                self.apply_control_due(update.ts);
            }
            if self.any_timer_due(update.ts) {
                self.fire_due(update.ts);
            }
            if !self.erased.is_empty() && self.names_erased(&update) {
                continue;
            }
            self.apply(update, false);
        }
        if self.control_due(limit) {
            self.apply_control_due(limit);
        }
        if self.any_timer_due(limit) {
            self.fire_due(limit);
        }
        if self.row_ttl != 0 {
            self.reclaim_due(limit);
        }
    }

    // --- erasure ----------------------------------------------------------

    fn erasure_due(&self, limit: i64) -> bool {
        matches!(self.pending_erasures.first(), Some(&(ts, _)) if ts <= limit)
    }

    fn feedback_due(&self, limit: i64) -> bool {
        matches!(self.held_feedback.peek(), Some(Reverse(feedback)) if feedback.ts <= limit)
    }

    /// An erasure or feedback waits with `ts <= limit`.
    fn control_due(&self, limit: i64) -> bool {
        self.erasure_due(limit) || self.feedback_due(limit)
    }

    /// `update` names a user erased already: dropped, counted once per event.
    fn names_erased(&mut self, update: &Update) -> bool {
        if !self.erased.contains_key(&update.owner) && !self.erased.contains_key(&update.contact) {
            return false;
        }
        if update.direction == OUT {
            self.stats.erased_events += 1;
        }
        true
    }

    /// Apply waiting erasures and feedback with `ts <= limit` in `ts` order (an erasure first on a
    /// tie), each after the deadlines and snooze ends before it (`_control_due`).
    fn apply_control_due(&mut self, limit: i64) {
        loop {
            let erasure_ts = self.pending_erasures.first().map(|&(ts, _)| ts).filter(|&ts| ts <= limit);
            let feedback_ts = self.held_feedback.peek().map(|Reverse(f)| f.ts).filter(|&ts| ts <= limit);
            let (ts, erasing) = match (erasure_ts, feedback_ts) {
                (None, None) => return,
                (Some(e), Some(f)) => (e.min(f), e <= f),
                (Some(e), None) => (e, true),
                (None, Some(f)) => (f, false),
            };
            if self.any_timer_due(ts - 1) {
                self.fire_due(ts - 1);
            }
            if erasing {
                let (_, user) = self.pending_erasures.pop_first().expect("an erasure is due");
                self.erase_now(user, ts);
            } else {
                let Reverse(feedback) = self.held_feedback.pop().expect("feedback is due");
                self.apply_feedback(feedback, ts);
            }
        }
    }

    /// Delete every row naming `user` (as owner or contact) with its deadline and expiry, by a
    /// scan of the row slots (no contact index, as the reference); remember the erasure. A freed
    /// slot may still have entries in the lazy heaps: they are skipped as superseded, as after a
    /// reclaim, since the slot's queued times are cleared.
    fn erase_now(&mut self, user: u32, ts: i64) {
        self.erased.entry(user).or_insert(ts);
        for index in 0..self.rows.len() {
            let row = &mut self.rows[index];
            if row.vacant || (row.owner != user && row.contact != user) {
                continue;
            }
            if row.live_deadline.is_some() {
                self.timers.live -= 1;
            }
            if row.queued_deadline.is_some() {
                self.timers.queued -= 1;
            }
            if row.live_expiry.is_some() {
                self.expiries.live -= 1;
            }
            if row.queued_expiry.is_some() {
                self.expiries.queued -= 1;
            }
            if row.known_established {
                self.established_rows -= 1;
            }
            if row.dormant_since.is_some() {
                self.dormant_rows -= 1;
            }
            self.keys.remove(&pack(row.owner, row.contact));
            *row = Row::vacant();
            self.free.push(index as u32);
            self.stats.rows_erased += 1;
        }
        // the snooze ends of the entries dropped here go stale in `snooze_ends`
        self.feedback.retain(|&key, _| (key >> 32) as u32 != user && key as u32 != user);
    }

    // --- feedback -----------------------------------------------------------

    /// Apply one feedback record as of event time `at` (its `ts`, or the watermark when it came late).
    fn apply_feedback(&mut self, feedback: HeldFeedback, at: i64) {
        let HeldFeedback { ts, owner, contact, action, until } = feedback;
        let owner = self.users.intern(&owner);
        let contact = self.users.intern(&contact);
        if self.erased.contains_key(&owner) || self.erased.contains_key(&contact) {
            return;
        }
        let key = pack(owner, contact);
        let entry = self.feedback.entry(key).or_default();
        if action == SNOOZE {
            if (ts, until) <= entry.snooze_key {
                return;
            }
            entry.snooze_key = (ts, until);
            if until > at {
                entry.snoozed_until = OptMs::some(until);
                self.snooze_ends.push(Reverse((until, key)));
            } else {
                entry.snoozed_until = OptMs::NONE;
            }
        } else {
            if (ts, action) <= entry.mute_key {
                return;
            }
            entry.mute_key = (ts, action);
            entry.muted = action == MUTE;
        }
        self.stats.feedback += 1;
        self.release(key, at);
    }

    /// The dormant alert the row's feedback withheld goes out at `at` if the row is no longer
    /// silenced and still dormant (`_release`).
    fn release(&mut self, key: u64, at: i64) {
        let Some(entry) = self.feedback.get_mut(&key) else { return };
        if !entry.withheld || entry.silenced(at) {
            return;
        }
        entry.withheld = false;
        if let Some(&index) = self.keys.get(&key) {
            if self.rows[index as usize].dormant_since.is_some() {
                self.emit(false, index, Some(at));
                self.stats.dormant += 1;
            }
        }
    }

    fn snooze_may_be_due(&self, limit: i64) -> bool {
        matches!(self.snooze_ends.peek(), Some(Reverse((until, _))) if *until <= limit)
    }

    /// End the snoozes `<= limit`, in `(until, owner, contact)` order, releasing what they withheld.
    fn end_snoozes(&mut self, limit: i64) {
        let mut due = Vec::new();
        while let Some(&Reverse((until, key))) = self.snooze_ends.peek() {
            if until > limit {
                break;
            }
            self.snooze_ends.pop();
            if let Some(entry) = self.feedback.get_mut(&key) {
                if entry.snoozed_until.get() == Some(until) {
                    entry.snoozed_until = OptMs::NONE;
                    due.push((until, key));
                }
            }
        }
        let names = &self.users.names;
        due.sort_by(|&(ua, a), &(ub, b)| {
            ua.cmp(&ub)
                .then_with(|| names[(a >> 32) as usize].cmp(&names[(b >> 32) as usize]))
                .then_with(|| names[a as u32 as usize].cmp(&names[b as u32 as usize]))
        });
        for (until, key) in due {
            self.release(key, until);
        }
    }

    // --- core -------------------------------------------------------------

    fn apply(&mut self, update: Update, late: bool) {
        let Update { ts, event_id, id_hash, owner, contact, direction, kind, pos, .. } = update;
        let key = pack(owner, contact);
        let mut seen_at = None;
        let index = match self.keys.get(&key) {
            None => {
                let index = match self.free.pop() {
                    Some(index) => {
                        self.rows[index as usize] = Row::first(owner, contact, ts);
                        index
                    }
                    None => {
                        let index = u32::try_from(self.rows.len()).expect("more than 2^32 rows");
                        self.rows.push(Row::first(owner, contact, ts));
                        index
                    }
                };
                self.keys.insert(key, index);
                index
            }
            Some(&index) => {
                let row = &self.rows[index as usize];
                let window = self.rules.dedup_window;
                seen_at = row.recent.find(id_hash as u32, event_id.as_str());
                if let Some(seen) = seen_at.map(|at| row.recent.get(at)) {
                    if seen.pos == pos || ((ts - seen.ts).abs() < window && row.last_at - seen.ts < window) {
                        if seen.pos == pos {
                            self.stats.redelivered += 1;
                        } else if direction == OUT {
                            self.stats.duplicates += 1;
                        }
                        return;
                    }
                }
                if self.row_ttl != 0
                    && row.last_at <= ts - self.row_ttl
                    && !(row.known_established || self.rules.established(row))
                {
                    self.reset(index, ts);
                }
                index
            }
        };
        if direction == OUT {
            self.stats.applied += 1;
            if late {
                self.stats.late += 1;
            }
        }
        let older = ts < self.rows[index as usize].last_at;
        if !older && self.rows[index as usize].dormant_since.is_some() {
            // a dormant alert withheld, or a muted row: no revival either
            let silenced = self.feedback.get_mut(&key).is_some_and(|entry| {
                let silenced = entry.withheld || entry.muted;
                entry.withheld = false;
                silenced
            });
            if silenced {
                self.stats.withheld += 1;
            } else {
                self.emit(true, index, None);
                self.stats.revived += 1;
            }
            self.rows[index as usize].dormant_since = OptMs::NONE;
            self.dormant_rows -= 1;
        }
        let rules = &self.rules;
        let row = &mut self.rows[index as usize];
        row.counts[usize::from(direction) * 3 + usize::from(kind)] += 1;
        let weight = rules.weights[usize::from(kind)];
        if older {
            row.strength += weight * rules.decay(row.last_at - ts);
        } else {
            row.strength = row.strength * rules.decay(ts - row.last_at) + weight;
            if row.touches == 0 {
                row.touches = 1;
                row.touch_at = ts;
            } else if ts >= row.touch_at + rules.touch_merge {
                row.gaps.push(ts - row.touch_at);
                if row.gaps.len() > rules.gap_window {
                    row.gaps.remove(0);
                }
                row.touch_at = ts;
                row.touches += 1;
                row.cached_threshold = OptMs::NONE;
            }
            row.last_at = ts;
        }
        row.first_at = row.first_at.min(ts);
        if direction == OUT {
            if row.last_out_at.is_none_or(|at| ts > at) {
                row.last_out_at = OptMs::some(ts);
            }
        } else if row.last_in_at.is_none_or(|at| ts > at) {
            row.last_in_at = OptMs::some(ts);
        }
        // _remember (replay never protects unwritten ids: keep = REMEMBER_AT_LEAST)
        // of several times an id was applied at, only the latest can still make a duplicate
        let remembered_ts = match seen_at {
            Some(at) => {
                // nothing touched `recent` since `seen_at` was found
                ts.max(row.recent.remove(at).ts)
            }
            None => ts,
        };
        row.recent.push_back(Recent { id: event_id, ts: remembered_ts, pos }, id_hash as u32);
        if row.recent.len() > REMEMBER_AT_LEAST {
            let horizon = row.last_at - rules.dedup_window;
            while row.recent.len() > REMEMBER_AT_LEAST {
                if row.recent.front().is_some_and(|r| r.ts > horizon) {
                    break;
                }
                row.recent.pop_front();
            }
        }
        self.schedule(index);
    }

    /// SPEC v1.1 §2: the row starts afresh at `ts`; it keeps its remembered ids (re-deliveries only)
    /// and its places in the timer and expiry indexes (kept by key in the reference).
    fn reset(&mut self, index: u32, ts: i64) {
        let old = &mut self.rows[index as usize];
        let mut fresh = Row::first(old.owner, old.contact, ts);
        fresh.recent = std::mem::take(&mut old.recent);
        fresh.live_deadline = old.live_deadline;
        fresh.queued_deadline = old.queued_deadline;
        fresh.live_expiry = old.live_expiry;
        fresh.queued_expiry = old.queued_expiry;
        *old = fresh;
        self.stats.rows_reset += 1;
    }

    fn schedule(&mut self, index: u32) {
        let row = &mut self.rows[index as usize];
        if !row.known_established {
            if !self.rules.established(row) {
                if self.row_ttl != 0 {
                    let expiry = row.last_at + self.reclaim_after;
                    self.set_expiry(index, expiry);
                }
                return;
            }
            row.known_established = true;
            self.established_rows += 1;
            if row.live_expiry.take().is_some() {
                self.expiries.live -= 1; // discard_expiry
            }
        }
        if row.dormant_since.is_some() {
            self.discard(index);
            return;
        }
        let threshold = match row.cached_threshold.get() {
            Some(threshold) => threshold,
            None => {
                let threshold = self.rules.threshold(&row.gaps);
                row.cached_threshold = OptMs::some(threshold);
                threshold
            }
        };
        let deadline = row.last_at + threshold;
        self.set_deadline(index, deadline);
    }

    fn emit(&mut self, revived: bool, index: u32, released_at: Option<i64>) {
        let row = &self.rows[index as usize];
        let typical_gap = Rules::typical_gap(&row.gaps);
        self.alerts.push(Alert {
            revived,
            owner: row.owner,
            contact: row.contact,
            last_at: row.last_at,
            dormant_since: row.dormant_since.get().expect("an alerting row has dormant_since"),
            detected_at: self.watermark,
            typical_gap: typical_gap.floor() as i64,
            threshold: self.rules.threshold_of(&row.gaps, typical_gap),
            touches: row.touches,
            counts: row.counts,
            last_out_at: row.last_out_at.get(),
            last_in_at: row.last_in_at.get(),
            strength: row.strength,
            released_at,
        });
    }

    /// Fire the deadlines `<= limit`, then end the snoozes `<= limit` (`_fire_due`).
    fn fire_due(&mut self, limit: i64) {
        for (deadline, index) in self.pop_due(limit) {
            self.fire(index, deadline);
        }
        if self.snooze_may_be_due(limit) {
            self.end_snoozes(limit);
        }
    }

    fn fire(&mut self, index: u32, deadline: i64) {
        let row = &mut self.rows[index as usize];
        row.dormant_since = OptMs::some(deadline);
        let key = pack(row.owner, row.contact);
        match self.feedback.get_mut(&key) {
            Some(entry) if entry.silenced(deadline) => {
                entry.withheld = true;
                self.stats.withheld += 1;
            }
            _ => {
                self.emit(false, index, None);
                self.stats.dormant += 1;
            }
        }
        self.dormant_rows += 1;
    }

    // --- timers (DeadlineIndex) ---------------------------------------------

    fn set_deadline(&mut self, index: u32, deadline: i64) {
        let row = &mut self.rows[index as usize];
        if row.live_deadline.is_none() {
            self.timers.live += 1;
        }
        row.live_deadline = OptMs::some(deadline);
        if let Some(queued) = row.queued_deadline.get() {
            if queued <= deadline {
                return;
            }
        } else {
            self.timers.queued += 1;
        }
        row.queued_deadline = OptMs::some(deadline);
        self.timers.heap.push(std::cmp::Reverse((deadline, index)));
        if self.timers.heap.len() > 2 * self.timers.queued + 1024 {
            self.compact_timers();
        }
    }

    fn discard(&mut self, index: u32) {
        let row = &mut self.rows[index as usize];
        if row.live_deadline.take().is_some() {
            self.timers.live -= 1;
        }
    }

    fn may_be_due(&self, limit: i64) -> bool {
        matches!(self.timers.heap.peek(), Some(std::cmp::Reverse((deadline, _))) if *deadline <= limit)
    }

    /// A deadline or a snooze end may be due at `limit` (`_any_timer_due`).
    fn any_timer_due(&self, limit: i64) -> bool {
        self.may_be_due(limit) || self.snooze_may_be_due(limit)
    }

    /// Every live deadline `<= limit`, removed, in `(deadline, owner, contact)` order.
    fn pop_due(&mut self, limit: i64) -> Vec<(i64, u32)> {
        let mut due = Vec::new();
        while let Some(&std::cmp::Reverse((deadline, index))) = self.timers.heap.peek() {
            if deadline > limit {
                break;
            }
            self.timers.heap.pop();
            let row = &mut self.rows[index as usize];
            if row.queued_deadline.get() != Some(deadline) {
                continue; // superseded by an earlier push
            }
            match row.live_deadline.get() {
                None => {
                    row.queued_deadline = OptMs::NONE;
                    self.timers.queued -= 1;
                }
                Some(current) if current == deadline => {
                    row.queued_deadline = OptMs::NONE;
                    row.live_deadline = OptMs::NONE;
                    self.timers.queued -= 1;
                    self.timers.live -= 1;
                    due.push((deadline, index));
                }
                Some(current) => {
                    row.queued_deadline = OptMs::some(current);
                    self.timers.heap.push(std::cmp::Reverse((current, index)));
                }
            }
        }
        if due.len() > 1 {
            let rows = &self.rows;
            let names = &self.users.names;
            due.sort_by(|&(da, a), &(db, b)| {
                let (ra, rb) = (&rows[a as usize], &rows[b as usize]);
                da.cmp(&db)
                    .then_with(|| names[ra.owner as usize].cmp(&names[rb.owner as usize]))
                    .then_with(|| names[ra.contact as usize].cmp(&names[rb.contact as usize]))
            });
        }
        due
    }

    // --- expiries (the reference's second DeadlineIndex) ------------------------

    fn set_expiry(&mut self, index: u32, expiry: i64) {
        let row = &mut self.rows[index as usize];
        if row.live_expiry.is_none() {
            self.expiries.live += 1;
        }
        row.live_expiry = OptMs::some(expiry);
        if let Some(queued) = row.queued_expiry.get() {
            if queued <= expiry {
                return;
            }
        } else {
            self.expiries.queued += 1;
        }
        row.queued_expiry = OptMs::some(expiry);
        self.expiries.heap.push(std::cmp::Reverse((expiry, index)));
        if self.expiries.heap.len() > 2 * self.expiries.queued + 1024 {
            self.compact_expiries();
        }
    }

    fn expiry_may_be_due(&self, limit: i64) -> bool {
        matches!(self.expiries.heap.peek(), Some(std::cmp::Reverse((expiry, _))) if *expiry <= limit)
    }

    /// Forget every row whose live expiry is `<= limit` (`_reclaim_due`): its key goes, its heap
    /// memory (gaps, recent ids) is freed and its slot joins `free` for the next new row. The
    /// reference goes in `(expiry, owner, contact)` order; nothing here depends on the order.
    fn reclaim_due(&mut self, limit: i64) {
        while let Some(&std::cmp::Reverse((expiry, index))) = self.expiries.heap.peek() {
            if expiry > limit {
                break;
            }
            self.expiries.heap.pop();
            let row = &mut self.rows[index as usize];
            if row.queued_expiry.get() != Some(expiry) {
                continue; // superseded by an earlier push
            }
            match row.live_expiry.get() {
                None => {
                    row.queued_expiry = OptMs::NONE;
                    self.expiries.queued -= 1;
                }
                Some(current) if current == expiry => {
                    self.expiries.queued -= 1;
                    self.expiries.live -= 1;
                    debug_assert!(row.live_deadline.is_none() && row.queued_deadline.is_none());
                    self.keys.remove(&pack(row.owner, row.contact));
                    *row = Row::vacant();
                    self.free.push(index);
                    self.stats.rows_reclaimed += 1;
                }
                Some(current) => {
                    row.queued_expiry = OptMs::some(current);
                    self.expiries.heap.push(std::cmp::Reverse((current, index)));
                }
            }
        }
    }

    fn compact_expiries(&mut self) {
        let mut heap = Vec::with_capacity(self.expiries.live);
        for (index, row) in self.rows.iter_mut().enumerate() {
            row.queued_expiry = row.live_expiry;
            if let Some(expiry) = row.live_expiry.get() {
                heap.push(std::cmp::Reverse((expiry, index as u32)));
            }
        }
        self.expiries.queued = heap.len();
        self.expiries.heap = heap.into();
    }

    fn compact_timers(&mut self) {
        let mut heap = Vec::with_capacity(self.timers.live);
        for (index, row) in self.rows.iter_mut().enumerate() {
            row.queued_deadline = row.live_deadline;
            if let Some(deadline) = row.live_deadline.get() {
                heap.push(std::cmp::Reverse((deadline, index as u32)));
            }
        }
        self.timers.queued = heap.len();
        self.timers.heap = heap.into();
    }
}
