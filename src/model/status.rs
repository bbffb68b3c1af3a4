//! Task statuses and sets of them.

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
