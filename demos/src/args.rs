//! A tiny command-line parser: `--name value` and `--name=value` options,
//! and `--flag` switches, with a usage message on error.

use std::str::FromStr;

/// Parsed `--name value` options, in order.
#[derive(Debug, Default)]
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses `std::env::args()`, treating the names in `switches` as flags
    /// that take no value.
    ///
    /// # Errors
    /// A message for an argument that is not an option, or an option
    /// missing its value.
    pub fn parse(switches: &[&str]) -> Result<Self, String> {
        Self::parse_from(std::env::args().skip(1), switches)
    }

    /// Parses the given arguments (without the program name).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        switches: &[&str],
    ) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            if let Some((n, v)) = name.split_once('=') {
                pairs.push((n.to_owned(), Some(v.to_owned())));
            } else if switches.contains(&name) {
                pairs.push((name.to_owned(), None));
            } else {
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                pairs.push((name.to_owned(), Some(value)));
            }
        }
        Ok(Self { pairs })
    }

    /// True when the switch `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The value of the last `--name`, parsed, or `default`.
    ///
    /// # Errors
    /// A message when the value does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.pairs.iter().rev().find(|(n, _)| n == name) {
            None => Ok(default),
            Some((_, None)) => Err(format!("--{name} needs a value")),
            Some((_, Some(v))) => v
                .parse()
                .map_err(|_| format!("invalid value for --{name}: {v:?}")),
        }
    }

    /// Fails on any option not in `known`.
    ///
    /// # Errors
    /// A message naming the unknown option.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self
            .pairs
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(format!("unknown option --{n}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, String> {
        Args::parse_from(v.iter().map(|s| s.to_string()), &["flag"])
    }

    #[test]
    fn options_and_switches() {
        let a = parse(&["--port", "7", "--host=h", "--flag"]).unwrap();
        assert_eq!(a.get("port", 0u16), Ok(7));
        assert_eq!(a.get("host", String::new()), Ok("h".to_owned()));
        assert!(a.flag("flag"));
        assert_eq!(a.get("threads", 3u32), Ok(3));
        assert!(a.only(&["port", "host", "flag"]).is_ok());
        assert!(a.only(&["port"]).is_err());
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["port"]).is_err());
        assert!(parse(&["--port", "x"]).unwrap().get("port", 0u16).is_err());
    }
}
