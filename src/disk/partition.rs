//! A partition as a table on the disk describes it, whatever the table.

/// One partition of a table read from a disk, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePartition {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// GPT: the type GUID in upper case; msdos: the type byte as `0x83`.
    pub kind: String,
    /// GPT partition name; empty on msdos.
    pub name: String,
}
