//! UTC instants to the millisecond, parsed from and written as the reference's format.

use std::fmt;

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
    /// The earliest instant the reference's format can write, `0000-01-01T00:00:00.000Z`.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);

    /// The latest instant the reference's format can write, `9999-12-31T23:59:59.999Z`.
    /// A record whose times lie outside [`Timestamp::MIN`]`..=`[`Timestamp::MAX`] is refused
    /// ([`Violation::BadTimestamp`](crate::Violation::BadTimestamp)): written back, it would read as another instant.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Whether the reference's format can write this instant (years 0000 to 9999).
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

    /// Parses `YYYY-MM-DDThh:mm:ss[.f|.ff|.fff]Z` (reference section 1); `None` when the text
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
    pub(super) fn from_civil(
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
pub(super) const FORMATTED_DAYS: std::ops::RangeInclusive<i64> = -719_528..=2_932_896;

/// The proleptic Gregorian date of a day since 1970-01-01. For the dates a timestamp can
/// spell, Neri and Schneider's Euclidean affine form ("Euclidean affine functions and their
/// application to calendar algorithms", 2022): 32-bit products and shifts, no division by a
/// variable (answers format two timestamps a task); checked against [`civil_from_days_hinnant`]
/// for every day of the range.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
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
pub(super) fn civil_from_days_hinnant(days: i64) -> (i64, i64, i64) {
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
