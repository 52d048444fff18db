//! Check schedules: cron expressions, as ODCS quality rules write them (`schedule` with
//! `scheduler: cron`).

use std::str::FromStr;

pub use cron::Schedule;

/// Parses a cron expression: five fields (minute to day of week, as in crontab and the ODCS
/// examples) or six with seconds first.
pub fn parse_schedule(expression: &str) -> Result<Schedule, String> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expression}")
    } else {
        expression.to_string()
    };
    // The parser's message draws a caret under the expression; keep its last line, the reason.
    Schedule::from_str(&full).map_err(|e| {
        let text = e.to_string();
        text.lines().last().unwrap_or(&text).trim().to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_and_seconds_schedules_parse() {
        assert!(parse_schedule("0 20 * * *").is_ok());
        assert!(parse_schedule("*/5 * * * * *").is_ok());
        assert!(parse_schedule("every day").is_err());
    }
}
