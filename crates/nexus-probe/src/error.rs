//! The probe settings' own errors: what serde accepted but cannot work.
//! A leaf module, so the probe modules and `config` share it without
//! importing each other.

/// A probe's settings that cannot work, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// None or several of fields of which exactly one must be set.
    #[error("set exactly one of {}", quoted(.fields))]
    ExactlyOne {
        /// The fields, as written in the probe file.
        fields: &'static [&'static str],
    },
    /// A field with a value that cannot work.
    #[error("`{field}` {why}")]
    Field {
        /// The field, as written in the probe file.
        field: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// An `expect_status` entry that is not `200`, `2xx` or `200-299`.
    #[error("invalid status range {0:?} (use 200, 2xx or 200-299)")]
    StatusRange(String),
    /// The heartbeat probe's `grace` table.
    #[error("grace: {0}")]
    Grace(Box<SpecError>),
}

impl SpecError {
    pub(crate) fn field(field: &'static str, why: impl Into<String>) -> SpecError {
        SpecError::Field {
            field,
            why: why.into(),
        }
    }
}

fn quoted(fields: &[&str]) -> String {
    let all: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    all.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_fields() {
        let e = SpecError::ExactlyOne {
            fields: &["pattern", "pidfile", "pid"],
        };
        assert_eq!(
            e.to_string(),
            "set exactly one of `pattern`, `pidfile`, `pid`"
        );
        let e = SpecError::Grace(Box::new(SpecError::field("pid", "0 is not a process")));
        assert_eq!(e.to_string(), "grace: `pid` 0 is not a process");
    }
}
