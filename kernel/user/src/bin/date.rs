//! Prints the wall-clock date (UTC, from the RTC) and the uptime.
#![no_std]
#![no_main]

use user::*;

entry!(main);

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

fn main(_args: Args) -> i32 {
    let secs = (time_ns() / 1_000_000_000) as i64;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let up = uptime_ms();
    println!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC (up {}.{:03} s)",
        s / 3600,
        s / 60 % 60,
        s % 60,
        up / 1000,
        up % 1000
    );
    0
}
