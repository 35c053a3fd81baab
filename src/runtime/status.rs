//! This process's `/proc/self/status`, read by field: what placement,
//! the locked-memory plan and the io_uring check each ask of it.

/// The value of field `name` (`Seccomp`, `CapEff`, ...) in the text of a
/// status file, trimmed.
pub(crate) fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'));
    value.map(str::trim)
}

/// Field `name` of this process's status; `None` when the file cannot be
/// read or has no such field.
pub(crate) fn own(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    field(&status, name).map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_is_found_by_its_whole_name_and_trimmed() {
        let status = "Name:\tringside\nCapEff:\t0000000000000000\nCapEffX:\t1\nSeccomp:\t2\n";
        assert_eq!(super::field(status, "Seccomp"), Some("2"));
        assert_eq!(super::field(status, "CapEff"), Some("0000000000000000"));
        assert_eq!(super::field(status, "Cap"), None);
        assert!(super::own("Name").is_some());
    }
}
