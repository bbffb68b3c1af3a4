//! The task record, its statuses and the field rules of contract section 1.

mod view;

pub use view::{PlainTask, TaskFields, JSON_STRING_ORDER};

use std::fmt;

/// The status of one device's upgrade task.
///
/// Four statuses are *unfinished* (`CONFIRM`, `QUEUED`, `NOTIFIED`, `IN_PROGRESS`), three are
/// *finished* (`SUCCEEDED`, `FAILED`, `CANCELED`). Names are matched exactly (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TaskStatus {
    /// `CONFIRM`: waiting for the user to confirm the upgrade.
    Confirm = 0,
    /// `QUEUED`: waiting to be pushed to the device.
    Queued = 1,
    /// `NOTIFIED`: pushed to the device.
    Notified = 2,
    /// `IN_PROGRESS`: the device is upgrading.
    InProgress = 3,
    /// `SUCCEEDED`: finished, upgraded.
    Succeeded = 4,
    /// `FAILED`: finished, the upgrade failed.
    Failed = 5,
    /// `CANCELED`: finished, the task was canceled.
    Canceled = 6,
}

impl TaskStatus {
    /// All seven statuses, in declaration order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Confirm,
        TaskStatus::Queued,
        TaskStatus::Notified,
        TaskStatus::InProgress,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ];

    /// The wire name, for example `"IN_PROGRESS"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Confirm => "CONFIRM",
            TaskStatus::Queued => "QUEUED",
            TaskStatus::Notified => "NOTIFIED",
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Succeeded => "SUCCEEDED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Canceled => "CANCELED",
        }
    }

    /// Parses a wire name; exact, case-sensitive match.
    ///
    /// ```
    /// use ota_index::TaskStatus;
    /// assert_eq!(TaskStatus::parse("QUEUED"), Some(TaskStatus::Queued));
    /// assert_eq!(TaskStatus::parse("queued"), None);
    /// ```
    pub fn parse(name: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True for the four statuses a task has before it ends.
    pub const fn is_unfinished(self) -> bool {
        (self as u8) < 4
    }

    /// The status with this discriminant (`self as u8`), if any.
    pub const fn from_u8(code: u8) -> Option<TaskStatus> {
        if (code as usize) < TaskStatus::ALL.len() {
            Some(TaskStatus::ALL[code as usize])
        } else {
            None
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`TaskStatus`] values, one bit each.
///
/// ```
/// use ota_index::{StatusSet, TaskStatus};
/// let set = StatusSet::EMPTY.with(TaskStatus::Queued).with(TaskStatus::Confirm);
/// assert!(set.contains(TaskStatus::Queued));
/// assert!(!set.contains(TaskStatus::Notified));
/// assert!(set.is_subset_of(StatusSet::UNFINISHED));
/// assert_eq!(set.len(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusSet(u8);

impl StatusSet {
    /// No status.
    pub const EMPTY: StatusSet = StatusSet(0);
    /// The four unfinished statuses.
    pub const UNFINISHED: StatusSet = StatusSet(0b000_1111);
    /// The three finished statuses.
    pub const FINISHED: StatusSet = StatusSet(0b111_0000);
    /// All seven statuses.
    pub const ALL: StatusSet = StatusSet(0b111_1111);

    /// The set holding only `status`.
    pub const fn only(status: TaskStatus) -> StatusSet {
        StatusSet(1 << status as u8)
    }

    /// This set with `status` added.
    #[must_use]
    pub const fn with(self, status: TaskStatus) -> StatusSet {
        StatusSet(self.0 | 1 << status as u8)
    }

    /// Adds `status`.
    pub fn insert(&mut self, status: TaskStatus) {
        self.0 |= 1 << status as u8;
    }

    /// True when `status` is in the set.
    pub const fn contains(self, status: TaskStatus) -> bool {
        self.0 & (1 << status as u8) != 0
    }

    /// True when the set holds no status.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many statuses the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True when every status of `self` is in `other`.
    pub const fn is_subset_of(self, other: StatusSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The union of both sets.
    #[must_use]
    pub const fn union(self, other: StatusSet) -> StatusSet {
        StatusSet(self.0 | other.0)
    }

    /// The statuses of the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }
}

impl FromIterator<TaskStatus> for StatusSet {
    fn from_iter<I: IntoIterator<Item = TaskStatus>>(iter: I) -> Self {
        iter.into_iter().fold(StatusSet::EMPTY, StatusSet::with)
    }
}

/// A UTC instant with millisecond precision, as milliseconds since 1970-01-01T00:00:00Z.
///
/// Parsed from `YYYY-MM-DDThh:mm:ss[.f]Z` with one to three fractional digits, always written
/// back with three (`YYYY-MM-DDThh:mm:ss.fffZ`).
///
/// ```
/// use ota_index::Timestamp;
/// let t = Timestamp::parse("2024-11-12T08:00:00.5Z").unwrap();
/// assert_eq!(t.to_string(), "2024-11-12T08:00:00.500Z");
/// assert!(Timestamp::parse("2024-02-30T00:00:00Z").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Length of a formatted timestamp: `YYYY-MM-DDThh:mm:ss.fffZ`.
pub const TIMESTAMP_LEN: usize = 24;

impl Timestamp {
    /// The earliest instant the contract's format can write, `0000-01-01T00:00:00.000Z`.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);

    /// The latest instant the contract's format can write, `9999-12-31T23:59:59.999Z`.
    /// A record whose times lie outside [`Timestamp::MIN`]`..=`[`Timestamp::MAX`] is refused
    /// ([`Violation::BadTimestamp`]): written back, it would read as another instant.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Whether the contract's format can write this instant (years 0000 to 9999).
    pub const fn is_writable(self) -> bool {
        self.0 >= Timestamp::MIN.0 && self.0 <= Timestamp::MAX.0
    }

    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DDThh:mm:ss[.f|.ff|.fff]Z` (contract section 1); `None` when the text
    /// is not exactly that shape or names no real instant (month 13, February 30, hour 24, …).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if let Ok(full) = <&[u8; TIMESTAMP_LEN]>::try_from(b) {
            return Timestamp::parse_full(full);
        }
        if b.len() < 20 || b.len() > TIMESTAMP_LEN || b[b.len() - 1] != b'Z' {
            return None;
        }
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        // Every bulk-loaded record has two: digits are tested all at once (no early exits),
        // then combined.
        let d = |i: usize| i64::from(b[i].wrapping_sub(b'0'));
        const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        if DIGITS.iter().fold(0, |bad, &i| bad | u8::from(d(i) > 9)) != 0 {
            return None;
        }
        let two = |i: usize| d(i) * 10 + d(i + 1);
        let year = two(0) * 100 + two(2);
        let (month, day, hour, minute, second) = (two(5), two(8), two(11), two(14), two(17));
        let millis = match b.len() {
            20 => 0,
            len if b[19] == b'.' && len >= 22 => {
                let fraction = &b[20..len - 1];
                if fraction.iter().any(|c| !c.is_ascii_digit()) {
                    return None;
                }
                let value = fraction
                    .iter()
                    .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0'));
                value * [100, 10, 1][fraction.len() - 1]
            }
            _ => return None,
        };
        Timestamp::from_civil([year, month, day, hour, minute, second], millis)
    }

    /// [`Timestamp::parse`] of the full form, `YYYY-MM-DDThh:mm:ss.fffZ` (what the platform
    /// and the fleet write: two a bulk-loaded record): three words, the separators compared
    /// and the 17 digits tested at once (a byte is a digit when its high nibble is 3, also
    /// after adding 6), then the fields read at fixed places. About a third of the
    /// instructions of the general path.
    fn parse_full(b: &[u8; TIMESTAMP_LEN]) -> Option<Timestamp> {
        // Per word: the template's separator bytes, and all ones in their lanes.
        const SEPARATORS: [u64; 3] = [
            u64::from_le_bytes(*b"\0\0\0\0-\0\0-"),
            u64::from_le_bytes(*b"\0\0T\0\0:\0\0"),
            u64::from_le_bytes(*b":\0\0.\0\0\0Z"),
        ];
        const SEPARATOR_LANES: [u64; 3] = [
            0xFF00_00FF_0000_0000,
            0x0000_FF00_00FF_0000,
            0xFF00_0000_FF00_00FF,
        ];
        let mut bad = 0u64;
        for (k, c) in b.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let digit_lanes = !SEPARATOR_LANES[k];
            let (nibble, threes) = (
                0xF0F0_F0F0_F0F0_F0F0 & digit_lanes,
                0x3030_3030_3030_3030 & digit_lanes,
            );
            bad |= (w & SEPARATOR_LANES[k]) ^ SEPARATORS[k];
            // A carry out of a lane comes only from a byte that already failed `nibble`.
            bad |= (w & nibble) ^ threes;
            bad |= (w.wrapping_add(0x0606_0606_0606_0606 & digit_lanes) & nibble) ^ threes;
        }
        if bad != 0 {
            return None;
        }
        let d = |i: usize| i64::from(b[i] - b'0');
        let two = |i: usize| d(i) * 10 + d(i + 1);
        let year = two(0) * 100 + two(2);
        let millis = d(20) * 100 + two(21);
        Timestamp::from_civil([year, two(5), two(8), two(11), two(14), two(17)], millis)
    }

    /// The instant of a civil date and time of day, `None` when it names none (month 13,
    /// February 30, hour 24, …).
    fn from_civil(
        [year, month, day, hour, minute, second]: [i64; 6],
        millis: i64,
    ) -> Option<Timestamp> {
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(Timestamp(
            ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis,
        ))
    }

    /// Writes `YYYY-MM-DDThh:mm:ss.fffZ` into a stack buffer; no allocation. Two digits at a
    /// time from a table: this runs twice for every task of every answer.
    pub fn format(self) -> [u8; TIMESTAMP_LEN] {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000) as u32;
        let (year, month, day) = civil_from_days(days);
        let year = year.rem_euclid(10_000) as u32;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut pair = |at: usize, value: u32| {
            let i = (value as usize % 100) * 2;
            out[at] = PAIRS[i];
            out[at + 1] = PAIRS[i + 1];
        };
        pair(0, year / 100);
        pair(2, year % 100);
        pair(5, month as u32);
        pair(8, day as u32);
        let seconds = ms_of_day / 1000;
        pair(11, seconds / 3600);
        pair(14, seconds / 60 % 60);
        pair(17, seconds % 60);
        let ms = ms_of_day % 1000;
        pair(21, ms % 100);
        out[20] = b'0' + (ms / 100) as u8;
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.format();
        // The buffer holds ASCII digits and separators only.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 of 0000-01-01 and of 9999-12-31: the dates a timestamp can spell.
const FORMATTED_DAYS: std::ops::RangeInclusive<i64> = -719_528..=2_932_896;

/// The proleptic Gregorian date of a day since 1970-01-01. For the dates a timestamp can
/// spell, Neri and Schneider's Euclidean affine form ("Euclidean affine functions and their
/// application to calendar algorithms", 2022): 32-bit products and shifts, no division by a
/// variable (answers format two timestamps a task); checked against [`civil_from_days_hinnant`]
/// for every day of the range.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    if !FORMATTED_DAYS.contains(&days) {
        return civil_from_days_hinnant(days);
    }
    // Shifted by 82 eras of 400 years so that every day of the range is positive.
    const ERAS: u32 = 82;
    let n = (days + i64::from(719_468 + 146_097 * ERAS)) as u32;
    let n1 = 4 * n + 3;
    let century = n1 / 146_097;
    let day_of_century = n1 % 146_097 / 4;
    let p2 = 2_939_745 * u64::from(4 * day_of_century + 3);
    let year_of_century = (p2 >> 32) as u32;
    let day_of_year = (p2 as u32) / 2_939_745 / 4; // from March 1st
    let n3 = 2141 * day_of_year + 197_913;
    let (month, day) = (n3 >> 16, (n3 & 0xFFFF) / 2141 + 1);
    let january_or_february = day_of_year >= 306;
    let year = i64::from(100 * century + year_of_century) - i64::from(400 * ERAS)
        + i64::from(january_or_february);
    let month = if january_or_february {
        month - 12
    } else {
        month
    };
    (year, i64::from(month), i64::from(day))
}

/// The date of a day since 1970-01-01, for any day (Howard Hinnant's algorithm).
fn civil_from_days_hinnant(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A field of the task record, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `taskId`
    TaskId,
    /// `jobId`
    JobId,
    /// `firmwareId`
    FirmwareId,
    /// `iotId`
    IotId,
    /// `productKey`
    ProductKey,
    /// `productName`
    ProductName,
    /// `deviceName`
    DeviceName,
    /// `moduleName`
    ModuleName,
    /// `srcVersion`
    SrcVersion,
    /// `destVersion`
    DestVersion,
    /// `taskStatus`
    TaskStatus,
    /// `utcCreate`
    UtcCreate,
    /// `utcModified`
    UtcModified,
    /// `iotInstanceId` (optional; absent or empty is the default instance)
    IotInstanceId,
}

impl Field {
    /// Every field, in the order of the response object (instance last).
    pub const ALL: [Field; 14] = [
        Field::DestVersion,
        Field::DeviceName,
        Field::FirmwareId,
        Field::IotId,
        Field::JobId,
        Field::ModuleName,
        Field::ProductKey,
        Field::ProductName,
        Field::SrcVersion,
        Field::TaskId,
        Field::TaskStatus,
        Field::UtcCreate,
        Field::UtcModified,
        Field::IotInstanceId,
    ];

    /// The camelCase wire name, for example `"taskId"`.
    pub const fn camel(self) -> &'static str {
        match self {
            Field::TaskId => "taskId",
            Field::JobId => "jobId",
            Field::FirmwareId => "firmwareId",
            Field::IotId => "iotId",
            Field::ProductKey => "productKey",
            Field::ProductName => "productName",
            Field::DeviceName => "deviceName",
            Field::ModuleName => "moduleName",
            Field::SrcVersion => "srcVersion",
            Field::DestVersion => "destVersion",
            Field::TaskStatus => "taskStatus",
            Field::UtcCreate => "utcCreate",
            Field::UtcModified => "utcModified",
            Field::IotInstanceId => "iotInstanceId",
        }
    }

    /// The PascalCase wire name, for example `"TaskId"`.
    pub const fn pascal(self) -> &'static str {
        match self {
            Field::TaskId => "TaskId",
            Field::JobId => "JobId",
            Field::FirmwareId => "FirmwareId",
            Field::IotId => "IotId",
            Field::ProductKey => "ProductKey",
            Field::ProductName => "ProductName",
            Field::DeviceName => "DeviceName",
            Field::ModuleName => "ModuleName",
            Field::SrcVersion => "SrcVersion",
            Field::DestVersion => "DestVersion",
            Field::TaskStatus => "TaskStatus",
            Field::UtcCreate => "UtcCreate",
            Field::UtcModified => "UtcModified",
            Field::IotInstanceId => "IotInstanceId",
        }
    }

    /// The field whose camelCase or PascalCase name is `key`.
    pub fn from_key(key: &str) -> Option<Field> {
        // This runs for every key of every bulk-loaded line. The two spellings differ only in
        // the first letter's case: dispatch on the length and that letter, then compare the
        // rest as a fixed-size array (inline loads, where a `match` on the strings called
        // `memcmp`: 481 → about 150 instructions a line of the benchmark fleet).
        let (&first, rest) = key.as_bytes().split_first()?;
        fn is<const N: usize>(rest: &[u8], want: &[u8; N]) -> bool {
            <&[u8; N]>::try_from(rest).is_ok_and(|r| r == want)
        }
        // `first | 0x20` is `t` only for `t` and `T`, and likewise for each letter here.
        Some(match (key.len(), first | 0x20) {
            (6, b't') if is(rest, b"askId") => Field::TaskId,
            (5, b'j') if is(rest, b"obId") => Field::JobId,
            (10, b'f') if is(rest, b"irmwareId") => Field::FirmwareId,
            (5, b'i') if is(rest, b"otId") => Field::IotId,
            (10, b'p') if is(rest, b"roductKey") => Field::ProductKey,
            (11, b'p') if is(rest, b"roductName") => Field::ProductName,
            (10, b'd') if is(rest, b"eviceName") => Field::DeviceName,
            (10, b'm') if is(rest, b"oduleName") => Field::ModuleName,
            (10, b's') if is(rest, b"rcVersion") => Field::SrcVersion,
            (11, b'd') if is(rest, b"estVersion") => Field::DestVersion,
            (10, b't') if is(rest, b"askStatus") => Field::TaskStatus,
            (9, b'u') if is(rest, b"tcCreate") => Field::UtcCreate,
            (11, b'u') if is(rest, b"tcModified") => Field::UtcModified,
            (13, b'i') if is(rest, b"otInstanceId") => Field::IotInstanceId,
            _ => return None,
        })
    }

    /// Checks a string value against this field's rule (contract section 1).
    ///
    /// `TaskStatus`, `UtcCreate` and `UtcModified` are checked by parsing them
    /// ([`TaskStatus::parse`], [`Timestamp::parse`]).
    pub fn check(self, value: &str) -> Result<(), Violation> {
        // The usual value is short ASCII: one table load a byte decides it; anything else
        // (a refused value, non-ASCII text) takes the exact path for its message.
        let fast = |class: u8, min: usize, max: usize| {
            (min..=max).contains(&value.len())
                && value.bytes().all(|b| ASCII_CLASS[b as usize] & class != 0)
        };
        let in_range = |low: u8, min: usize, max: usize| {
            (min..=max).contains(&value.len()) && all_in_range(value.as_bytes(), low)
        };
        let accepted = match self {
            Field::TaskId | Field::JobId | Field::FirmwareId | Field::IotId | Field::ProductKey => {
                in_range(0x21, 1, 64)
            }
            Field::ProductName | Field::DestVersion => in_range(0x20, 1, 64),
            Field::SrcVersion => in_range(0x20, 0, 64),
            Field::DeviceName => fast(DEVICE_NAME, 4, 32),
            Field::ModuleName => fast(MODULE_NAME, 1, 64),
            _ => false,
        };
        if accepted {
            return Ok(());
        }
        self.check_exact(value)
    }

    /// [`Field::check`] char by char, with the violation's details.
    fn check_exact(self, value: &str) -> Result<(), Violation> {
        match self {
            Field::TaskId | Field::JobId | Field::FirmwareId | Field::IotId | Field::ProductKey => {
                check_chars(value, 1, 64, is_visible_ascii, "visible ASCII (0x21-0x7E)")
            }
            Field::IotInstanceId => {
                check_chars(value, 0, 64, is_visible_ascii, "visible ASCII (0x21-0x7E)")
            }
            Field::ProductName => {
                check_chars(value, 1, 64, is_not_control, "no control characters")
            }
            Field::DeviceName => check_chars(
                value,
                4,
                32,
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.' | ':'),
                "A-Z a-z 0-9 _ - @ . :",
            ),
            Field::ModuleName => check_chars(
                value,
                1,
                64,
                |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'),
                "A-Z a-z 0-9 . - _",
            ),
            Field::SrcVersion => check_chars(value, 0, 64, is_not_control, "no control characters"),
            Field::DestVersion => {
                check_chars(value, 1, 64, is_not_control, "no control characters")
            }
            Field::TaskStatus => match TaskStatus::parse(value) {
                Some(_) => Ok(()),
                None => Err(Violation::UnknownStatus),
            },
            Field::UtcCreate | Field::UtcModified => match Timestamp::parse(value) {
                Some(_) => Ok(()),
                None => Err(Violation::BadTimestamp),
            },
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.camel())
    }
}

/// True when every byte is in `low..=0x7E` (`low` ≤ 0x7E), eight bytes at a time (field
/// values are checked on every write and query, and the usual one is visible ASCII).
fn all_in_range(bytes: &[u8], low: u8) -> bool {
    !crate::raw::swar::any_word(bytes, |v| {
        crate::raw::swar::has_byte_below(v, low) || crate::raw::swar::has_byte_above_7e(v)
    })
}

/// The string fields of a record, in [`RecordRef`]'s order (the bulk loader's too).
pub(crate) const STRING_FIELDS: [Field; 11] = [
    Field::TaskId,
    Field::JobId,
    Field::FirmwareId,
    Field::IotId,
    Field::ProductKey,
    Field::ProductName,
    Field::DeviceName,
    Field::ModuleName,
    Field::SrcVersion,
    Field::DestVersion,
    Field::IotInstanceId,
];

/// [`ASCII_CLASS`] bit: `deviceName`'s characters.
const DEVICE_NAME: u8 = 1;
/// [`ASCII_CLASS`] bit: `moduleName`'s characters.
const MODULE_NAME: u8 = 2;

/// Which of the field alphabets each byte belongs to (non-ASCII bytes: none; such values take
/// the exact, char-by-char path).
const ASCII_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0x20;
    while b < 0x7f {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'@' | b'.' | b':') {
            class[b] |= DEVICE_NAME;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_') {
            class[b] |= MODULE_NAME;
        }
        b += 1;
    }
    class
};

fn is_visible_ascii(c: char) -> bool {
    ('\x21'..='\x7e').contains(&c)
}

fn is_not_control(c: char) -> bool {
    !c.is_control()
}

fn check_chars(
    value: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
    allowed_desc: &'static str,
) -> Result<(), Violation> {
    let count = if value.is_ascii() {
        // Every byte is a char: test bytes, no UTF-8 decoding.
        if let Some(&b) = value.as_bytes().iter().find(|&&b| !allowed(b as char)) {
            return Err(Violation::BadChar {
                ch: b as char,
                allowed: allowed_desc,
            });
        }
        value.len()
    } else {
        let mut count = 0usize;
        for c in value.chars() {
            if !allowed(c) {
                return Err(Violation::BadChar {
                    ch: c,
                    allowed: allowed_desc,
                });
            }
            count += 1;
        }
        count
    };
    if count == 0 && min > 0 {
        return Err(Violation::Missing);
    }
    if count < min || count > max {
        return Err(Violation::Length { min, max });
    }
    Ok(())
}

/// Why a field value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The field is absent or empty where a value is required.
    Missing,
    /// The value's length (in characters) is outside `min..=max`.
    Length {
        /// Fewest characters allowed.
        min: usize,
        /// Most characters allowed.
        max: usize,
    },
    /// The value holds a character the field does not allow.
    BadChar {
        /// The first character refused.
        ch: char,
        /// The characters the field allows, in words.
        allowed: &'static str,
    },
    /// Not one of the seven status names.
    UnknownStatus,
    /// Not `YYYY-MM-DDThh:mm:ss[.fff]Z`, or not a real instant; for a typed record, an
    /// instant outside years 0000 to 9999 ([`Timestamp::is_writable`]).
    BadTimestamp,
    /// The JSON value is not a string (a number, `null`, an object, …).
    NotAString,
    /// The record gives the field twice (in either key style).
    Duplicate,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Missing => f.write_str("is missing or empty"),
            Violation::Length { min, max } => {
                write!(f, "must be {min} to {max} characters long")
            }
            Violation::BadChar { ch, allowed } => {
                write!(f, "holds {ch:?}; allowed characters: {allowed}")
            }
            Violation::UnknownStatus => f.write_str(
                "is not a task status (CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS, SUCCEEDED, FAILED, CANCELED)",
            ),
            Violation::BadTimestamp => {
                f.write_str("is not a UTC time of the form YYYY-MM-DDThh:mm:ss[.fff]Z, years 0000 to 9999")
            }
            Violation::NotAString => f.write_str("must be a JSON string"),
            Violation::Duplicate => f.write_str("is given twice"),
        }
    }
}

/// A field that broke its rule: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {violation}")]
pub struct FieldError {
    /// The field at fault.
    pub field: Field,
    /// What was wrong with it.
    pub violation: Violation,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: Field, violation: Violation) -> FieldError {
        FieldError { field, violation }
    }
}

/// One task, owned: the thirteen fields of contract section 1 plus the instance.
///
/// Build one with struct syntax and check it with [`TaskRecord::validate`]; the engine
/// validates every record it is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskRecord {
    /// The task's identity within its instance.
    pub task_id: String,
    /// The upgrade job (batch) the task belongs to.
    pub job_id: String,
    /// The firmware (upgrade package) id.
    pub firmware_id: String,
    /// The device's platform-wide id.
    pub iot_id: String,
    /// The product the device belongs to.
    pub product_key: String,
    /// The product's display name.
    pub product_name: String,
    /// The device's name within its product.
    pub device_name: String,
    /// The OTA module; `default` is the whole firmware.
    pub module_name: String,
    /// The version before the upgrade; may be empty (unknown).
    pub src_version: String,
    /// The version after the upgrade.
    pub dest_version: String,
    /// The task's status.
    pub status: TaskStatus,
    /// When the task was created.
    pub utc_create: Timestamp,
    /// When the task was last modified; the newest write wins (contract section 2).
    pub utc_modified: Timestamp,
    /// The platform instance; empty is the default instance.
    pub iot_instance_id: String,
}

impl TaskRecord {
    /// Checks every field rule of contract section 1; the first broken rule, in field order,
    /// the times last (each must be one the format can write, [`Timestamp::is_writable`]).
    ///
    /// ```
    /// use ota_index::{Field, TaskRecord, TaskStatus, Timestamp};
    /// let mut task = TaskRecord {
    ///     task_id: "t1".into(),
    ///     job_id: "j1".into(),
    ///     firmware_id: "f1".into(),
    ///     iot_id: "dev-1".into(),
    ///     product_key: "pk1".into(),
    ///     product_name: "Lamp".into(),
    ///     device_name: "lamp-01".into(),
    ///     module_name: "default".into(),
    ///     src_version: "1.0".into(),
    ///     dest_version: "1.1".into(),
    ///     status: TaskStatus::Queued,
    ///     utc_create: Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
    ///     utc_modified: Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
    ///     iot_instance_id: String::new(),
    /// };
    /// assert!(task.validate().is_ok());
    /// task.device_name = "abc".into(); // 4 to 32 characters
    /// assert_eq!(task.validate().unwrap_err().field, Field::DeviceName);
    /// ```
    pub fn validate(&self) -> Result<(), FieldError> {
        self.as_ref().validate()
    }

    /// A borrowed view of this record.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            task_id: &self.task_id,
            job_id: &self.job_id,
            firmware_id: &self.firmware_id,
            iot_id: &self.iot_id,
            product_key: &self.product_key,
            product_name: &self.product_name,
            device_name: &self.device_name,
            module_name: &self.module_name,
            src_version: &self.src_version,
            dest_version: &self.dest_version,
            status: self.status,
            utc_create: self.utc_create,
            utc_modified: self.utc_modified,
            iot_instance_id: &self.iot_instance_id,
        }
    }
}

/// A task record whose strings are borrowed (from a parse buffer, a view, an owned record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// See [`TaskRecord::task_id`].
    pub task_id: &'a str,
    /// See [`TaskRecord::job_id`].
    pub job_id: &'a str,
    /// See [`TaskRecord::firmware_id`].
    pub firmware_id: &'a str,
    /// See [`TaskRecord::iot_id`].
    pub iot_id: &'a str,
    /// See [`TaskRecord::product_key`].
    pub product_key: &'a str,
    /// See [`TaskRecord::product_name`].
    pub product_name: &'a str,
    /// See [`TaskRecord::device_name`].
    pub device_name: &'a str,
    /// See [`TaskRecord::module_name`].
    pub module_name: &'a str,
    /// See [`TaskRecord::src_version`].
    pub src_version: &'a str,
    /// See [`TaskRecord::dest_version`].
    pub dest_version: &'a str,
    /// See [`TaskRecord::status`].
    pub status: TaskStatus,
    /// See [`TaskRecord::utc_create`].
    pub utc_create: Timestamp,
    /// See [`TaskRecord::utc_modified`].
    pub utc_modified: Timestamp,
    /// See [`TaskRecord::iot_instance_id`].
    pub iot_instance_id: &'a str,
}

impl RecordRef<'_> {
    /// True when no string is longer in bytes than any field rule allows (64 characters of
    /// up to 4 bytes) and both times are writable: a cheap bound, checked before a record's
    /// strings are hashed under a lock without having been validated (a record equal to a
    /// stored task but for its status and times needs no other check).
    pub(crate) fn within_bounds(&self) -> bool {
        self.string_fields().iter().all(|(_, v)| v.len() <= 4 * 64)
            && self.utc_create.is_writable()
            && self.utc_modified.is_writable()
    }

    /// Both times checked: the first one the contract's format cannot write.
    fn check_times(&self) -> Result<(), FieldError> {
        for (field, time) in [
            (Field::UtcCreate, self.utc_create),
            (Field::UtcModified, self.utc_modified),
        ] {
            if !time.is_writable() {
                return Err(FieldError::new(field, Violation::BadTimestamp));
            }
        }
        Ok(())
    }

    /// The string fields with their values, in field order (for validation).
    fn string_fields(&self) -> [(Field, &str); 11] {
        [
            (Field::TaskId, self.task_id),
            (Field::JobId, self.job_id),
            (Field::FirmwareId, self.firmware_id),
            (Field::IotId, self.iot_id),
            (Field::ProductKey, self.product_key),
            (Field::ProductName, self.product_name),
            (Field::DeviceName, self.device_name),
            (Field::ModuleName, self.module_name),
            (Field::SrcVersion, self.src_version),
            (Field::DestVersion, self.dest_version),
            (Field::IotInstanceId, self.iot_instance_id),
        ]
    }

    /// Checks every field rule of contract section 1 (see [`TaskRecord::validate`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in self.string_fields() {
            field.check(value).map_err(|v| FieldError::new(field, v))?;
        }
        self.check_times()
    }

    /// An owned copy.
    pub fn to_owned(&self) -> TaskRecord {
        TaskRecord {
            task_id: self.task_id.to_owned(),
            job_id: self.job_id.to_owned(),
            firmware_id: self.firmware_id.to_owned(),
            iot_id: self.iot_id.to_owned(),
            product_key: self.product_key.to_owned(),
            product_name: self.product_name.to_owned(),
            device_name: self.device_name.to_owned(),
            module_name: self.module_name.to_owned(),
            src_version: self.src_version.to_owned(),
            dest_version: self.dest_version.to_owned(),
            status: self.status,
            utc_create: self.utc_create,
            utc_modified: self.utc_modified,
            iot_instance_id: self.iot_instance_id.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_and_split_four_three() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
            assert_eq!(TaskStatus::from_u8(s as u8), Some(s));
        }
        let unfinished: Vec<_> = StatusSet::UNFINISHED
            .iter()
            .map(TaskStatus::as_str)
            .collect();
        assert_eq!(unfinished, ["CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS"]);
        let finished: Vec<_> = StatusSet::FINISHED.iter().map(TaskStatus::as_str).collect();
        assert_eq!(finished, ["SUCCEEDED", "FAILED", "CANCELED"]);
        assert_eq!(TaskStatus::parse("In_Progress"), None);
        assert_eq!(TaskStatus::from_u8(7), None);
    }

    #[test]
    fn timestamps_parse_normalise_and_reject() {
        let cases = [
            ("2024-11-11T11:11:11Z", "2024-11-11T11:11:11.000Z"),
            ("2024-11-12T08:00:00.5Z", "2024-11-12T08:00:00.500Z"),
            ("2024-11-12T08:00:00.05Z", "2024-11-12T08:00:00.050Z"),
            ("2024-09-11T03:40:02.734Z", "2024-09-11T03:40:02.734Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
            ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
            ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
        ];
        for (input, output) in cases {
            let t = Timestamp::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(t.to_string(), output, "{input}");
        }
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:01.5Z")
                .unwrap()
                .as_millis(),
            1500
        );
        for bad in [
            "",
            "2024-11-11 11:11:11Z",
            "2024-11-11T11:11:11",
            "2024-11-11T11:11:11.Z",
            "2024-11-11T11:11:11.1234Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:60Z",
            "2024-1-01T00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00z",
            "2024-01-01T00:00:00.12aZ",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }

    /// The first implementation of [`Timestamp::parse`]'s reading of the text (digit by
    /// digit, early exits), kept as the reference for the one that tests all digits at once;
    /// both end in the same range checks (`from_civil`, covered by the rejection tests).
    fn reference_parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() < 20 || b.len() > TIMESTAMP_LEN || b[b.len() - 1] != b'Z' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            b[range].iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let millis = match b.len() {
            20 => 0,
            len if b[19] == b'.' && len >= 22 => {
                let digits = len - 21;
                num(20..20 + digits)? * [100, 10, 1][digits - 1]
            }
            _ => return None,
        };
        Timestamp::from_civil([year, month, day, hour, minute, second], millis)
    }

    #[test]
    fn timestamp_parse_matches_the_reference_for_every_byte_at_every_position() {
        for text in [
            "2024-11-11T11:11:11Z",
            "2024-11-12T08:00:00.5Z",
            "2024-11-12T08:00:00.05Z",
            "2024-02-29T23:59:59.999Z",
            "1999-12-31T09:09:09.000Z",
            "0000-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
            "2023-02-28T19:30:45.678Z",
        ] {
            for at in 0..text.len() {
                for c in 0..=u8::MAX {
                    let mut bytes = text.as_bytes().to_vec();
                    bytes[at] = c;
                    let Ok(mutated) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    assert_eq!(
                        Timestamp::parse(mutated),
                        reference_parse(mutated),
                        "{mutated:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn civil_dates_match_hinnant_for_every_formatted_day() {
        for days in *FORMATTED_DAYS.start() - 3..=*FORMATTED_DAYS.end() + 3 {
            assert_eq!(
                civil_from_days(days),
                civil_from_days_hinnant(days),
                "{days}"
            );
        }
        assert_eq!(civil_from_days(*FORMATTED_DAYS.start()), (0, 1, 1));
        assert_eq!(civil_from_days(*FORMATTED_DAYS.end()), (9999, 12, 31));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // Far outside the range: no overflow, the same dates.
        for days in [
            i64::from(i32::MIN),
            -10_000_000,
            10_000_000,
            i64::from(i32::MAX),
        ] {
            assert_eq!(civil_from_days(days), civil_from_days_hinnant(days));
        }
    }

    #[test]
    fn timestamp_format_round_trips_over_all_years() {
        let first = Timestamp::parse("0000-01-01T00:00:00Z")
            .unwrap()
            .as_millis();
        let last = Timestamp::parse("9999-12-31T23:59:59.999Z")
            .unwrap()
            .as_millis();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ms = first + (x % (last - first + 1) as u64) as i64;
            let t = Timestamp::from_millis(ms);
            let text = t.to_string();
            assert_eq!(Timestamp::parse(&text), Some(t), "{ms} -> {text}");
        }
    }

    #[test]
    fn timestamp_order_follows_time() {
        let a = Timestamp::parse("2024-11-12T08:00:00.5Z").unwrap();
        let b = Timestamp::parse("2024-11-12T08:00:00.499Z").unwrap();
        assert!(b < a);
    }

    #[test]
    fn field_rules_of_contract_section_1() {
        use Violation::*;
        let ok = |f: Field, v: &str| assert_eq!(f.check(v), Ok(()), "{f} {v:?}");
        let bad = |f: Field, v: &str| assert!(f.check(v).is_err(), "{f} {v:?} should fail");
        for f in [
            Field::TaskId,
            Field::JobId,
            Field::FirmwareId,
            Field::IotId,
            Field::ProductKey,
        ] {
            ok(f, "a");
            ok(f, &"x".repeat(64));
            ok(f, "!~*#");
            bad(f, "");
            bad(f, &"x".repeat(65));
            bad(f, "a b");
            bad(f, "é");
            bad(f, "a\tb");
        }
        assert_eq!(Field::TaskId.check(""), Err(Missing));
        ok(Field::ProductName, "智能灯 \\ Lamp");
        ok(Field::ProductName, &"灯".repeat(64));
        bad(Field::ProductName, &"灯".repeat(65));
        bad(Field::ProductName, "");
        bad(Field::ProductName, "a\nb");
        bad(Field::ProductName, "a\u{7f}b");
        bad(Field::ProductName, "a\u{85}b");
        ok(Field::DeviceName, "mac:00-1A@home.x");
        ok(Field::DeviceName, "abcd");
        ok(Field::DeviceName, &"d".repeat(32));
        bad(Field::DeviceName, "abc");
        bad(Field::DeviceName, &"d".repeat(33));
        bad(Field::DeviceName, "dev ice");
        bad(Field::DeviceName, "dev/ice");
        bad(Field::DeviceName, "灯灯灯灯");
        ok(Field::ModuleName, "default");
        ok(Field::ModuleName, "Wifi_Module-2.1");
        ok(Field::ModuleName, "b");
        bad(Field::ModuleName, "");
        bad(Field::ModuleName, "a:b");
        bad(Field::ModuleName, "a b");
        bad(Field::ModuleName, &"m".repeat(65));
        ok(Field::SrcVersion, "");
        ok(Field::SrcVersion, "1.0 beta \"x\"");
        bad(Field::SrcVersion, "1\u{0}");
        bad(Field::SrcVersion, &"v".repeat(65));
        ok(Field::DestVersion, "2.0 \"beta\"");
        bad(Field::DestVersion, "");
        bad(Field::DestVersion, "2\r");
        ok(Field::IotInstanceId, "");
        ok(Field::IotInstanceId, "iot-c3j0000");
        bad(Field::IotInstanceId, "iot c3");
        assert!(matches!(
            Field::DeviceName.check("abc"),
            Err(Length { min: 4, max: 32 })
        ));
        assert!(matches!(
            Field::ModuleName.check("a:b"),
            Err(BadChar { ch: ':', .. })
        ));
    }

    #[test]
    fn field_names_in_both_styles() {
        for f in Field::ALL {
            assert_eq!(Field::from_key(f.camel()), Some(f));
            assert_eq!(Field::from_key(f.pascal()), Some(f));
        }
        assert_eq!(Field::from_key("taskid"), None);
        assert_eq!(Field::from_key("progress"), None);
        assert_eq!(Field::from_key(""), None);
        // Every key one ASCII byte away from a name (changed, dropped or added at any place)
        // is that field only if it is exactly one of the two spellings of one.
        let named = |key: &str| {
            Field::ALL
                .into_iter()
                .find(|f| f.camel() == key || f.pascal() == key)
        };
        for f in Field::ALL {
            let name = f.camel().as_bytes();
            for at in 0..=name.len() {
                for b in 0u8..0x80 {
                    let mut changed = name.to_vec();
                    let mut added = name.to_vec();
                    added.insert(at, b);
                    let mut keys = vec![added];
                    if at < name.len() {
                        changed[at] = b;
                        keys.push(changed);
                        let mut dropped = name.to_vec();
                        dropped.remove(at);
                        keys.push(dropped);
                    }
                    for key in keys {
                        let key = String::from_utf8(key).unwrap();
                        assert_eq!(Field::from_key(&key), named(&key), "{key:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// The byte-table fast path of `Field::check` accepts exactly what the char-by-char
        /// rules accept, for every field.
        #[test]
        fn fast_field_check_agrees_with_the_exact_rules(
            value in "[a-zA-Z0-9 _@.:\\-\"\\\\\t\x00\x7f~é智]{0,70}"
        ) {
            for field in STRING_FIELDS {
                proptest::prop_assert_eq!(
                    field.check(&value),
                    field.check_exact(&value),
                    "{} {:?}", field, value
                );
            }
        }
    }

    #[test]
    fn fast_field_check_agrees_on_every_byte_position() {
        crate::raw::swar::each_byte_at_each_position(|text, _| {
            let want = text.iter().all(|&c| (0x21..=0x7e).contains(&c));
            assert_eq!(all_in_range(text, 0x21), want, "{text:?}");
            let want = text.iter().all(|&c| (0x20..=0x7e).contains(&c));
            assert_eq!(all_in_range(text, 0x20), want, "{text:?}");
        });
        assert!(all_in_range(b"", 0x21));
    }

    #[test]
    fn fast_field_check_agrees_on_every_ascii_byte() {
        for field in STRING_FIELDS {
            for b in 0u8..0x80 {
                for len in [1, 4, 32, 33, 64, 65] {
                    let value = String::from(b as char).repeat(len);
                    assert_eq!(
                        field.check(&value),
                        field.check_exact(&value),
                        "{field} {value:?}"
                    );
                    let mixed = format!("abcd{}", b as char);
                    assert_eq!(
                        field.check(&mixed),
                        field.check_exact(&mixed),
                        "{field} {mixed:?}"
                    );
                }
            }
        }
    }
}
