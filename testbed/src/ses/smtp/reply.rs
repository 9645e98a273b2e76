//! One SMTP reply: a code and one or more lines of text (RFC 5321 §4.2).

/// An SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            lines: vec![text.into()],
        }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Self {
        Self { code, lines }
    }

    /// The wire form: `250-first\r\n … 250 last\r\n`.
    pub fn wire(&self) -> String {
        let last = self.lines.len().saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let sep = if i == last { ' ' } else { '-' };
                format!("{}{sep}{line}\r\n", self.code)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_use_dashes_until_the_last_line() {
        let reply = Reply::multi(250, vec!["a".into(), "b".into(), "Ok".into()]);
        assert_eq!(reply.wire(), "250-a\r\n250-b\r\n250 Ok\r\n");
        assert_eq!(Reply::new(221, "Bye").wire(), "221 Bye\r\n");
    }
}
