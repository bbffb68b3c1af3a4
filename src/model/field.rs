//! The task's fields by name, and their rules (reference section 1).

use std::fmt;

use super::status::TaskStatus;
use super::time::Timestamp;

macro_rules! define_field {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
        optional: [$($o:ident $ov:ident $oc:literal $op:literal $od:literal;)*]
    ) => {
        /// A field of the task record, as named on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Field {
            $(#[doc = concat!("`", $sc, "`")] $sv,)*
            $(#[doc = concat!("`", $tc, "`")] $tv,)*
            $(#[doc = concat!("`", $mc, "`")] $mv,)*
            $(#[doc = concat!("`", $oc, "` (optional)")] $ov,)*
        }

        impl Field {
            /// How many fields a record has.
            pub(crate) const COUNT: usize =
                [$(Field::$sv,)* $(Field::$tv,)* $(Field::$mv,)* $(Field::$ov,)*].len();

            /// Every field in the order of the task table: the strings (the instance last),
            /// the status, the times. The order in which a record's rules are checked.
            pub(crate) const TABLE: [Field; Field::COUNT] =
                [$(Field::$sv,)* $(Field::$tv,)* $(Field::$mv,)* $(Field::$ov,)*];

            /// The optional fields, in table order.
            pub(crate) const OPTIONAL: [Field; [$(Field::$ov,)*].len()] = [$(Field::$ov,)*];

            /// The string fields of a record, in table order (the instance last).
            pub(crate) const STRINGS: [Field; [$(Field::$sv,)*].len()] = [$(Field::$sv,)*];

            /// The camelCase wire name, for example `"taskId"`.
            pub const fn camel(self) -> &'static str {
                match self {
                    $(Field::$sv => $sc,)*
                    $(Field::$tv => $tc,)*
                    $(Field::$mv => $mc,)*
                    $(Field::$ov => $oc,)*
                }
            }

            /// The PascalCase wire name, for example `"TaskId"`.
            pub const fn pascal(self) -> &'static str {
                match self {
                    $(Field::$sv => $sp,)*
                    $(Field::$tv => $tp,)*
                    $(Field::$mv => $mp,)*
                    $(Field::$ov => $op,)*
                }
            }
        }
    };
}

super::task_fields!(define_field);

impl Field {
    /// Every field, in the order of a response object's keys (the camelCase names in byte
    /// order), the instance, which answers never write, last.
    pub const ALL: [Field; Field::COUNT] = {
        let mut all = Field::TABLE;
        // Insertion sort by camelCase name, the instance kept last.
        let mut i = 1;
        while i < all.len() {
            let mut j = i;
            while j > 0 && name_before(all[j], all[j - 1]) {
                let t = all[j];
                all[j] = all[j - 1];
                all[j - 1] = t;
                j -= 1;
            }
            i += 1;
        }
        all
    };

    /// The fields a device answer writes (reference section 4), in its key order: every
    /// field but the optional ones and the instance.
    pub const DEVICE_ANSWER: [Field; Field::COUNT - Field::OPTIONAL.len() - 1] = {
        let mut answer = [Field::TaskId; Field::COUNT - Field::OPTIONAL.len() - 1];
        let (mut i, mut n) = (0, 0);
        while i < Field::ALL.len() {
            let field = Field::ALL[i];
            if !field.is_optional() && !matches!(field, Field::IotInstanceId) {
                answer[n] = field;
                n += 1;
            }
            i += 1;
        }
        answer
    };

    /// True for the three optional fields (`progress`, `taskDesc`, `timeout`): absent and
    /// empty are one, unknown.
    pub const fn is_optional(self) -> bool {
        let mut i = 0;
        while i < Field::OPTIONAL.len() {
            if Field::OPTIONAL[i] as u8 == self as u8 {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The field whose camelCase or PascalCase name is `key`.
    pub fn from_key(key: &str) -> Option<Field> {
        // This runs for every key of every bulk-loaded line: the two spellings differ only
        // in the first letter's case, and no two names share their length and first letter,
        // so one table entry is the only candidate, compared in at most two word loads.
        let (&first, _) = key.as_bytes().split_first()?;
        let field = KEY_SLOTS[key_slot(key.len(), first)]?;
        let name = field.camel().as_bytes();
        (name.len() == key.len() && name[0] == first | 0x20 && same_tail(name, key.as_bytes()))
            .then_some(field)
    }

    /// Checks a string value against this field's rule (reference section 1).
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
            Field::Progress => in_range(0x20, 0, 16),
            Field::TaskDesc => in_range(0x20, 0, 256),
            Field::Timeout => value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()),
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
    pub(super) fn check_exact(self, value: &str) -> Result<(), Violation> {
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
            Field::Progress => check_chars(value, 0, 16, is_not_control, "no control characters"),
            Field::TaskDesc => check_chars(value, 0, 256, is_not_control, "no control characters"),
            Field::Timeout => check_chars(value, 0, 10, |c| c.is_ascii_digit(), "0-9"),
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

/// True when `a` comes before `b` in response order: the camelCase names in byte order,
/// the instance after every other field.
const fn name_before(a: Field, b: Field) -> bool {
    if matches!(a, Field::IotInstanceId) {
        return false;
    }
    if matches!(b, Field::IotInstanceId) {
        return true;
    }
    let (a, b) = (a.camel().as_bytes(), b.camel().as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// The slot of a key in [`KEY_SLOTS`]: its length and first letter, either case.
const fn key_slot(len: usize, first: u8) -> usize {
    (len.wrapping_mul(10) + (first | 0x20) as usize) & (KEY_SLOTS_LEN - 1)
}

const KEY_SLOTS_LEN: usize = 64;

/// The one field a key of each length and first letter may name (see [`Field::from_key`]).
const KEY_SLOTS: [Option<Field>; KEY_SLOTS_LEN] = {
    let mut slots = [None; KEY_SLOTS_LEN];
    let mut i = 0;
    while i < Field::TABLE.len() {
        let field = Field::TABLE[i];
        let name = field.camel().as_bytes();
        let slot = key_slot(name.len(), name[0]);
        assert!(slots[slot].is_none(), "two field names share a key slot");
        slots[slot] = Some(field);
        i += 1;
    }
    slots
};

/// True when `a` and `b`, of equal length, agree past their first byte: two overlapping
/// word loads for names of up to 16 bytes, as a `memcmp` call would cost more than the
/// compare.
#[inline(always)]
fn same_tail(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len());
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        0 | 1 => true,
        2..=4 => a[1..] == b[1..],
        5..=8 => half(a, 1) == half(b, 1) && half(a, n - 4) == half(b, n - 4),
        9..=16 => word(a, 1) == word(b, 1) && word(a, n - 8) == word(b, n - 8),
        _ => a[1..] == b[1..],
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.camel())
    }
}

/// True when every byte is in `low..=0x7E` (`low` ≤ 0x7E), eight bytes at a time (field
/// values are checked on every write and query, and the usual one is visible ASCII).
pub(super) fn all_in_range(bytes: &[u8], low: u8) -> bool {
    !crate::raw::swar::any_word(bytes, |v| {
        crate::raw::swar::has_byte_below(v, low) || crate::raw::swar::has_byte_above_7e(v)
    })
}

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
