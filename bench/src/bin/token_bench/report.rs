//! The report on stdout: the table of variants, the in-process costs and the "where the
//! time goes" paragraph that takes each variant's CPU per request apart.

use crate::Cli;
use crate::inprocess::Micro;
use crate::load::{Outcome, Variant};
use crate::proc_stats::clock_ticks_per_second;

/// Prints the table, the in-process costs and the paragraph.
pub fn print_report(
    cli: &Cli,
    database_url: &str,
    micro: &Micro,
    variants: &[Variant],
    results: &[Outcome],
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let db = if cli.postgres { "PostgreSQL" } else { "SQLite" };
    println!();
    println!("berth-auth token issuance, {db} ({database_url})");
    println!(
        "{cores} cores shared by berth-auth, this client{}; CPU from /proc/<pid>/stat ({} \
         ticks/s) over each measured window of {} s (password: {} s)",
        if cli.postgres { " and PostgreSQL" } else { "" },
        clock_ticks_per_second(),
        cli.seconds,
        cli.password_seconds
    );
    if cli.rounds > 1 {
        println!(
            "{} rounds: per variant, the round with the least CPU used by other processes",
            cli.rounds
        );
    }
    println!();
    let db_col = |r: &Outcome| r.db_cpu_us.map_or("-".into(), |d| format!("{d:.0}"));
    println!(
        "{:<10} {:<36} {:>3} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>5} {:>8} {:>7} {:>9} {:>5} {:>7}",
        "variant",
        "request",
        "c",
        "reqs",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "auth µs/r",
        "cores",
        "pg µs/r",
        "pg tx/r",
        "clnt µs/r",
        "other",
        "HWM MiB"
    );
    for (v, r) in variants.iter().zip(results) {
        println!(
            "{:<10} {:<36} {:>3} {:>7} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>9.0} {:>5.2} {:>8} {:>7} {:>9.0} {:>5.2} {:>7}",
            v.name,
            v.what,
            v.clients,
            r.requests,
            r.rps,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.server_cpu_us,
            r.server_cores,
            db_col(r),
            r.pg_tx.map_or("-".into(), |t| format!("{t:.1}")),
            r.client_cpu_us,
            r.other_cores,
            r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1}")),
        );
    }
    println!(
        "(c = concurrent clients; auth/pg/clnt µs/r = CPU µs per request of berth-auth, of \
         the PostgreSQL backends serving it, of this client; cores = berth-auth CPU seconds \
         per second; pg tx/r = PostgreSQL transactions per request, from a sequential probe; \
         other = cores busy with anything else on the machine, which competed with \
         the bench; HWM = berth-auth VmHWM after the variant, cumulative)"
    );
    println!();
    println!("in-process (one core, berth-token and sha2 as built into this binary):");
    println!(
        "  ES256 token (claims + JSON + sign), one repository access: {:>8.1} µs/op",
        micro.sign_us
    );
    println!(
        "  SHA-256 of a PAT, hex-encoded:                             {:>8.3} µs/op",
        micro.sha_us
    );
    println!();
    println!("where the time goes:");
    for line in wrap(&where_time_goes(micro, variants, results, cli.rounds), 94) {
        println!("  {line}");
    }
}

/// The paragraph: each variant's CPU per request taken apart with the in-process costs
/// and the differences between variants.
fn where_time_goes(
    micro: &Micro,
    variants: &[Variant],
    results: &[Outcome],
    rounds: u32,
) -> String {
    let get = |name: &str| {
        variants
            .iter()
            .zip(results)
            .find(|(v, _)| v.name == name)
            .map(|(_, r)| r)
    };
    let (Some(login), Some(full), Some(anon)) = (get("login"), get("pat+scope"), get("anonymous"))
    else {
        return "(a variant is missing)".into();
    };
    let sign = micro.sign_us;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = format!(
        "A PAT token with one repository scope costs berth-auth {:.0} µs of CPU ({:.0} \
         tokens/s using {:.2} cores); signing it (ES256, in-process {sign:.0} µs) is {:.0}% \
         of that, SHA-256 of the PAT {:.1} µs is noise. The docker-login form (PAT, no \
         scope; still signed) costs {:.0} µs, so HTTP + credential check (PAT digest lookup \
         + user) is about {:.0} µs besides the signature, and the repository scope adds {:.0} \
         µs (project by path, namespace chain, membership, access claim). An anonymous pull \
         of a public project (grant + sign, no credential) costs {:.0} µs, {:.0} µs besides \
         the signature.",
        full.server_cpu_us,
        full.rps,
        full.server_cores,
        100.0 * sign / full.server_cpu_us,
        micro.sha_us,
        login.server_cpu_us,
        login.server_cpu_us - sign,
        full.server_cpu_us - login.server_cpu_us,
        anon.server_cpu_us,
        anon.server_cpu_us - sign,
    );
    if let Some(db) = full.db_cpu_us {
        let tx = full.pg_tx.unwrap_or(0.0);
        s.push_str(&format!(
            " PostgreSQL's backends spend another {db:.0} µs per full token (login {:.0}, \
             anonymous {:.0}) on {tx:.1} transactions (login {:.1}, anonymous {:.1}), about \
             {:.0} µs each, so a full token costs {:.0} µs of server CPU in all; each \
             transaction is also a loopback round trip inside berth-auth's figure.",
            login.db_cpu_us.unwrap_or(0.0),
            anon.db_cpu_us.unwrap_or(0.0),
            login.pg_tx.unwrap_or(0.0),
            anon.pg_tx.unwrap_or(0.0),
            if tx > 0.0 { db / tx } else { 0.0 },
            full.server_cpu_us + db,
        ));
    }
    s.push_str(&format!(
        " This client spends {:.0} µs per full token on the same {cores} cores, so the rate \
         is bounded by the processes sharing the machine as much as by berth-auth.",
        full.client_cpu_us,
    ));
    if let Some(pw) = get("password") {
        s.push_str(&format!(
            " A password login with the same scope costs {:.1} ms of CPU, {:.0}x the PAT \
             (argon2id is ~{:.0}% of it): {:.0} tokens/s, p50 {:.0} ms at {} clients.",
            pw.server_cpu_us / 1000.0,
            pw.server_cpu_us / full.server_cpu_us,
            100.0 * (pw.server_cpu_us - full.server_cpu_us) / pw.server_cpu_us,
            pw.rps,
            pw.p50_ms,
            variants
                .iter()
                .find(|v| v.name == "password")
                .map_or(0, |v| v.clients),
        ));
    }
    let busiest = results.iter().map(|r| r.other_cores).fold(0.0, f64::max);
    if busiest > 0.2 {
        s.push_str(&format!(
            " Other processes kept up to {busiest:.2} cores busy during the runs (see \
             \"other\"): rates are lower and CPU per request is higher than on a quiet \
             machine{}.",
            if rounds > 1 { "" } else { " (try --rounds 3)" }
        ));
    }
    s
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
