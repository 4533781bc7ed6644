//! `priorauth`: the command line over the engine. Argument parsing, file reading and
//! output; every decision is made in `priorauth-core`.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use priorauth_core::report::{self, Report};
use priorauth_core::{Engine, generate};

/// Exit status for bad input: an invalid case, an unknown policy id, an unreadable file.
const EXIT_BAD_INPUT: u8 = 1;
/// Exit status for policy files that do not load.
const EXIT_POLICY_ERROR: u8 = 3;
/// Exit status when the audit log does not verify.
const EXIT_AUDIT_BROKEN: u8 = 4;
/// Exit status when `policy lint` has findings nobody acknowledged.
const EXIT_LINT_FINDINGS: u8 = 5;

/// `println!` that ends the command quietly when standard output's reader has gone, and
/// returns any other write failure as the command's error.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format_args!($($arg)*)))?
    };
}

mod tools;

/// mimalloc rather than the system's malloc: measured in BENCHMARKS.md ("The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod service;

#[derive(Debug, Parser)]
#[command(
    name = "priorauth",
    version,
    about = "Decide prior-authorization requests against payer policies, and explain each decision",
    after_help = "Exit status: 0 for any decision (approve, deny, review, incomplete, not_applicable); \
                  1 for bad input (the message names the key); 3 when policy files do not load; \
                  4 when `audit verify` finds the log changed; 5 when `policy lint` has unacknowledged findings."
)]
struct Cli {
    /// Load the policies of this directory instead of the bundled ones.
    #[arg(long, global = true, value_name = "DIR")]
    policies: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide cases (docs/case-format.md) against every policy, or the ones named.
    Evaluate {
        /// Case files; `-` reads standard input.
        #[arg(value_name = "CASE.json", required_unless_present = "batch")]
        cases: Vec<PathBuf>,
        /// Only this policy (repeatable).
        #[arg(long = "policy", value_name = "ID")]
        policy: Vec<String>,
        /// `text` (the default for case files): a summary row per policy, in color on a
        /// terminal, the criterion tree with `--explain`. `json`: the decision contract, one
        /// document for one file, one document per line (JSON Lines) for several, an invalid
        /// file a line `{"file", "error", "problems"}`. `--batch` writes JSON Lines unless
        /// given `--format text`.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// With text: every policy's tree of criteria, each with the sentence it encodes.
        #[arg(long)]
        explain: bool,
        /// Decide one case per line of a JSONL file (`-`: standard input), writing one
        /// decision per line. Invalid lines are answered with an error object. A progress
        /// line on a terminal; a summary (cases, outcomes, time) on standard error.
        #[arg(long, value_name = "FILE.jsonl", conflicts_with = "cases")]
        batch: Option<PathBuf>,
        /// Decide as the payer would on the day it received the request (YYYY-MM-DD): the
        /// policy versions in effect that day decide and an approval starts then. Without
        /// it, `request.date` serves for both (recorded cases keep deciding the same).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        received: Option<priorauth_core::date::Date>,
    },
    /// List the policies with their source documents and dates.
    Policies,
    /// Decide every case of a JSONL file under two versions of a policy and report how the
    /// outcomes move.
    Impact {
        #[arg(long, value_name = "OLD.toml")]
        from: PathBuf,
        #[arg(long, value_name = "NEW.toml")]
        to: PathBuf,
        #[arg(value_name = "CASES.jsonl")]
        cases: PathBuf,
        /// Case ids shown per movement.
        #[arg(long, default_value_t = 3)]
        examples: usize,
    },
    /// Reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Policy file tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the service: HTTP API on LISTEN, records in DATABASE_URL (default: an SQLite file
    /// `priorauth.sqlite` in the working directory). Stops cleanly on SIGINT/SIGTERM.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Plans file (default: the bundled config/plans.toml).
        #[arg(long, value_name = "FILE")]
        plans: Option<PathBuf>,
    },
    /// The payer's eligibility in DATABASE_URL's database, by which CRD and PAS find a
    /// member's plan from the member id on the EHR's Coverage.
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// Clients that sign their own credentials (SMART Backend Services, CDS Hooks JWTs), in
    /// DATABASE_URL's database.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manage API keys in DATABASE_URL's database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log in DATABASE_URL's database.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Generate cases.
    Cases {
        #[command(subcommand)]
        command: CasesCommand,
    },
    /// A realistic past in DATABASE_URL's (fresh) database, for reports.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Fill a fresh database with DAYS of requests up to today, and what followed them
    /// (completions, withdrawals, determinations, extensions, peer-to-peer discussions,
    /// appeals, reopenings), each written through the service's own lifecycle at its time.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        #[arg(long, default_value_t = 365)]
        days: i64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Plans file (default: the bundled config/plans.toml).
        #[arg(long, value_name = "FILE")]
        plans: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Find impossible, hidden and overlapping pathways, unused criteria, quotes not in the
    /// document and unstated outcomes. Without FILES: the loaded policies. Exit 5 when a
    /// finding is not acknowledged in its file (`[lint] acknowledged`).
    Lint { files: Vec<PathBuf> },
    /// The criteria, pathways and applicability that changed between two versions.
    Diff { old: PathBuf, new: PathBuf },
    /// Every fact a policy may read: the case format's keys, the facts derived from them, and
    /// those the loaded policies declare in facts.toml, with type and meaning.
    Facts,
    /// Write a new policy file to start from (ID.toml in DIR, with `sources/` for its
    /// document), and print the plan entry that makes the service use it.
    New {
        /// The policy's id, lowercase with dashes (`acme-rx-118`).
        id: String,
        /// The drug it governs (an id of the drug catalog: `priorauth policy facts` lists them).
        #[arg(long)]
        drug: String,
        /// The payer's name.
        #[arg(long)]
        payer: String,
        /// Where to write it.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Clinical scenarios against every policy: coverage.html and coverage.md in OUT.
    Coverage {
        #[arg(long, default_value = "config/scenarios.json")]
        scenarios: PathBuf,
        /// Where the scenarios' base cases are.
        #[arg(long, default_value = "tests/cases")]
        cases: PathBuf,
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// The UM program's record for the requests received from FROM to TO (UTC, inclusive) in
    /// DATABASE_URL's database: outcomes, turnaround, timeliness, appeals, CMS-0057-F metrics.
    Um {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// markdown, csv, html or json.
        #[arg(long, default_value = "markdown")]
        format: String,
        /// Plans file (default: the bundled config/plans.toml).
        #[arg(long, value_name = "FILE")]
        plans: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        organization: String,
        /// submitter, reviewer or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        /// A reviewer's licence and degree, recorded on determinations (`MD, Hematology`).
        #[arg(long, default_value = "")]
        credentials: String,
    },
    /// Revoke a key by its id: refused from the next call on.
    Revoke { id: String },
    /// Every key: id, organization, role, name, created and revoked times (never a secret).
    List,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Register a client (or replace its keys): its id is the `iss` of the JWTs it signs
    /// (for SMART, its `client_id`); its calls act as the organization and role given.
    Register {
        #[arg(long)]
        id: String,
        #[arg(long)]
        organization: String,
        /// submitter, reviewer or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        /// The client's public keys: a JWKS file (`{"keys": [...]}`; RS384 or ES384 keys).
        #[arg(long, value_name = "FILE")]
        jwks: PathBuf,
    },
    /// Revoke a client: its JWTs and access tokens are refused from the next call on.
    Revoke { id: String },
    /// Every client: id, organization, role, name, revoked (never a key).
    List,
}

#[derive(Debug, Subcommand)]
enum MembersCommand {
    /// Load enrolments from a CSV file with the header
    /// `member_id,plan,effective_from,effective_to,birth_date` (the last two may be empty;
    /// `effective_to` is the last day covered). Every row is checked before any is written;
    /// a row with the same member, plan and first day replaces the stored one.
    Import {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        /// Plans file (default: the bundled config/plans.toml).
        #[arg(long, value_name = "FILE")]
        plans: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every entry's hash and its link to the one before; exit 4 if the log was changed.
    Verify,
}

#[derive(Debug, Subcommand)]
enum CasesCommand {
    /// Write a population of plausible cases as JSONL.
    Generate {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Percent of facts left unknown.
        #[arg(long, default_value_t = 3)]
        unknown_percent: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let engine = match &cli.policies {
        None => Engine::bundled(),
        Some(dir) => Engine::from_dir(dir),
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: policy files do not load: {error}");
            return ExitCode::from(EXIT_POLICY_ERROR);
        }
    };
    let result = match cli.command {
        Command::Evaluate {
            cases,
            policy,
            format,
            explain,
            batch,
            received,
        } => {
            let selected = match select(&engine, &policy) {
                Ok(selected) => selected,
                Err(message) => return fail(&message),
            };
            match batch {
                Some(path) => run_batch(
                    &engine,
                    &path,
                    &selected,
                    received,
                    format.unwrap_or(Format::Json),
                ),
                None => evaluate(
                    &engine,
                    &cases,
                    &selected,
                    format.unwrap_or(Format::Text),
                    explain,
                    received,
                ),
            }
        }
        Command::Policies => list_policies(&engine),
        Command::History {
            command:
                HistoryCommand::Generate {
                    requests,
                    days,
                    seed,
                    plans,
                },
        } => service::generate_history(engine, requests, days, seed, plans.as_deref()),
        Command::Cases {
            command:
                CasesCommand::Generate {
                    count,
                    seed,
                    unknown_percent,
                },
        } => generate_cases(count, seed, unknown_percent),
        Command::Policy {
            command: PolicyCommand::Lint { files },
        } => match tools::lint(&engine, &files) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(EXIT_LINT_FINDINGS),
            Err(message) => Err(message),
        },
        Command::Policy {
            command: PolicyCommand::Diff { old, new },
        } => tools::diff(&engine, &old, &new),
        Command::Policy {
            command: PolicyCommand::Facts,
        } => tools::facts(&engine),
        Command::Policy {
            command:
                PolicyCommand::New {
                    id,
                    drug,
                    payer,
                    out,
                },
        } => tools::new_policy(&engine, &id, &drug, &payer, &out),
        Command::Report {
            command:
                ReportCommand::Coverage {
                    scenarios,
                    cases,
                    out,
                },
        } => tools::coverage(&engine, &scenarios, &cases, &out),
        Command::Report {
            command:
                ReportCommand::Um {
                    from,
                    to,
                    format,
                    plans,
                },
        } => service::um_report(engine, &from, &to, &format, plans.as_deref()),
        Command::Impact {
            from,
            to,
            cases,
            examples,
        } => tools::impact(&engine, &from, &to, &cases, examples),
        Command::Serve { listen, plans } => {
            service::serve(engine, &listen, plans.as_deref(), cli.policies.as_deref())
        }
        Command::Keys { command } => service::keys(command),
        Command::Clients { command } => service::clients(command),
        Command::Members {
            command: MembersCommand::Import { file, plans },
        } => service::import_members(engine, &file, plans.as_deref()),
        Command::Audit {
            command: AuditCommand::Verify,
        } => match service::verify() {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(EXIT_AUDIT_BROKEN),
            Err(message) => Err(message),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// A failed write to standard output. A reader that closed the pipe (`priorauth policies |
/// head`) has all it wanted: the command ends quietly with success, as Unix tools do.
fn write_error(error: io::Error) -> String {
    if error.kind() == io::ErrorKind::BrokenPipe {
        // Bad input already reported keeps its status: `… | grep -q` must not hide it.
        let status = if INVALID_SEEN.load(std::sync::atomic::Ordering::Relaxed) {
            EXIT_BAD_INPUT
        } else {
            0
        };
        std::process::exit(i32::from(status));
    }
    format!("cannot write: {error}")
}

/// Set when an invalid case file or line has been reported, for [`write_error`].
static INVALID_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn invalid_seen() {
    INVALID_SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn json_write_error(error: serde_json::Error) -> String {
    match error.io_error_kind() {
        Some(kind) => write_error(io::Error::from(kind)),
        None => format!("cannot write: {error}"),
    }
}

/// Writes to standard output, as [`write_error`] says.
fn write_stdout(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(write_error)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}

fn select(engine: &Engine, ids: &[String]) -> Result<Vec<usize>, String> {
    ids.iter()
        .map(|id| {
            engine.policy_index(id).ok_or_else(|| {
                let known: Vec<&str> = engine.policies.iter().map(|p| p.id.as_str()).collect();
                format!(
                    "unknown policy `{id}` (the policies are {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

fn read_input(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    }
}

/// Colors on standard output: a terminal, and no `NO_COLOR` (no-color.org).
fn colored() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Decides each case file. An invalid file is reported (on standard error, or as a JSON
/// line) and the rest are decided; the exit status is 1 at the end if any was invalid.
fn evaluate(
    engine: &Engine,
    paths: &[PathBuf],
    selected: &[usize],
    format: Format,
    explain: bool,
    received: Option<priorauth_core::date::Date>,
) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let color = colored();
    let lines = paths.len() > 1;
    let mut invalid = Vec::new();
    for path in paths {
        let decided = read_input(path).map_err(Problem::Read).and_then(|text| {
            let case = engine.parse_case(&text).map_err(Problem::Case)?;
            let evaluation = engine
                .evaluate_received(&case, selected, received)
                .map_err(Problem::Case)?;
            Ok((case, evaluation))
        });
        let (case, evaluation) = match decided {
            Ok(decided) => decided,
            Err(problem) => {
                let message = problem.to_string();
                if format == Format::Json && lines {
                    let problems: Vec<_> = match &problem {
                        Problem::Case(error) => error
                            .problems
                            .iter()
                            .map(|p| serde_json::json!({"key": p.key, "message": p.message}))
                            .collect(),
                        Problem::Read(_) => Vec::new(),
                    };
                    let object = serde_json::json!({"file": path.display().to_string(), "error": message, "problems": problems});
                    writeln!(out, "{object}").map_err(write_error)?;
                } else {
                    eprintln!("error: {}: {message}", path.display());
                }
                invalid.push(path.display().to_string());
                invalid_seen();
                continue;
            }
        };
        match format {
            Format::Json => {
                let report = Report::new(engine, &case, &evaluation);
                let rendered = if lines {
                    serde_json::to_string(&report)
                } else {
                    serde_json::to_string_pretty(&report)
                };
                let rendered = rendered.map_err(|e| format!("cannot write the decision: {e}"))?;
                writeln!(out, "{rendered}").map_err(write_error)?;
            }
            Format::Text if explain => {
                writeln!(out, "{}", report::text(engine, &case, &evaluation))
                    .map_err(write_error)?
            }
            Format::Text => write!(
                out,
                "{}",
                report::summary(engine, &case, &evaluation, color)
            )
            .map_err(write_error)?,
        }
    }
    out.flush().map_err(write_error)?;
    match invalid.as_slice() {
        [] => Ok(()),
        // One file: its error was the message.
        [_] if !lines => Err(format!("{} is not a valid case", invalid.join(", "))),
        _ => Err(format!(
            "{} of {} case files invalid: {}",
            invalid.len(),
            paths.len(),
            invalid.join(", ")
        )),
    }
}

/// Why a case file was not decided.
enum Problem {
    Read(String),
    Case(priorauth_core::CaseError),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Read(message) => write!(f, "{message}"),
            Problem::Case(error) => write!(f, "{error}"),
        }
    }
}

/// Streams one decision per input line, so a run of any size needs constant memory.
fn run_batch(
    engine: &Engine,
    path: &Path,
    selected: &[usize],
    received: Option<priorauth_core::date::Date>,
    format: Format,
) -> Result<(), String> {
    let (input, total_bytes): (Box<dyn BufRead>, Option<u64>) = if path == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(io::BufReader::with_capacity(1 << 16, file)), size)
    };
    let summary_colored = (format == Format::Text).then(colored);
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut progress = Progress::new(total_bytes);
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(1 << 16);
    let mut evaluation = priorauth_core::Evaluation::default();
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read line {}: {e}", number + 1))?;
        progress.advance(line.len() as u64 + 1, tally.cases);
        if line.trim().is_empty() {
            continue;
        }
        match report::decide_line_as(
            engine,
            &line,
            selected,
            received,
            &mut evaluation,
            &mut buffer,
            summary_colored,
        ) {
            Ok(()) => tally.decided(&evaluation),
            Err(error) => {
                tally.invalid += 1;
                invalid_seen();
                let problems: Vec<_> = error
                    .problems
                    .iter()
                    .map(|p| serde_json::json!({"key": p.key, "message": p.message}))
                    .collect();
                let object = serde_json::json!({"line": number + 1, "error": error.to_string(), "problems": problems});
                serde_json::to_writer(&mut buffer, &object).map_err(json_write_error)?;
                buffer.push(b'\n');
            }
        }
        if buffer.len() >= 1 << 15 {
            out.write_all(&buffer).map_err(write_error)?;
            buffer.clear();
        }
    }
    out.write_all(&buffer).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    progress.finish();
    eprintln!("{}", tally.line(progress.started.elapsed()));
    if tally.invalid > 0 {
        return Err(format!(
            "{} invalid case line(s); each is answered with an error object",
            tally.invalid
        ));
    }
    Ok(())
}

/// The cases and outcomes of a batch, for its summary on standard error.
#[derive(Default)]
struct Tally {
    cases: u64,
    invalid: u64,
    /// Decisions by outcome (one per policy and case): approve, deny, review, incomplete,
    /// not_applicable.
    outcomes: [u64; 5],
}

impl Tally {
    fn decided(&mut self, evaluation: &priorauth_core::Evaluation) {
        use priorauth_core::Outcome;
        self.cases += 1;
        for (_, decision) in &evaluation.decisions {
            let slot = match decision.outcome {
                Outcome::Approve => 0,
                Outcome::Deny => 1,
                Outcome::Review => 2,
                Outcome::Incomplete => 3,
                Outcome::NotApplicable => 4,
            };
            if let Some(count) = self.outcomes.get_mut(slot) {
                *count += 1;
            }
        }
    }

    fn line(&self, elapsed: std::time::Duration) -> String {
        let [approve, deny, review, incomplete, not_applicable] = self.outcomes;
        let seconds = elapsed.as_secs_f64();
        format!(
            "{} cases decided in {seconds:.2} s ({:.0} per second), {} invalid; decisions: {approve} approve, {deny} deny, {review} review, {incomplete} incomplete, {not_applicable} not_applicable",
            self.cases,
            self.cases as f64 / seconds.max(1e-9),
            self.invalid
        )
    }
}

/// A progress line on standard error when it is a terminal, redrawn at most five times a
/// second: a bar when the input's size is known, the count of cases otherwise.
struct Progress {
    shown: bool,
    total: Option<u64>,
    read: u64,
    started: std::time::Instant,
    drawn: std::time::Instant,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress {
            shown: io::stderr().is_terminal(),
            total,
            read: 0,
            started: now,
            drawn: now,
        }
    }

    fn advance(&mut self, bytes: u64, cases: u64) {
        self.read += bytes;
        if !self.shown || self.drawn.elapsed() < std::time::Duration::from_millis(200) {
            return;
        }
        self.drawn = std::time::Instant::now();
        let line = match self.total {
            Some(total) if total > 0 => {
                let done = (self.read.min(total) * 30 / total) as usize;
                format!(
                    "[{}{}] {:>3}%  {cases} cases",
                    "#".repeat(done),
                    ".".repeat(30 - done),
                    self.read.min(total) * 100 / total
                )
            }
            _ => format!("{cases} cases"),
        };
        eprint!("\r{line}");
    }

    fn finish(&self) {
        if self.shown && self.drawn != self.started {
            eprint!("\r\x1b[2K");
        }
    }
}

fn list_policies(engine: &Engine) -> Result<(), String> {
    for policy in &engine.policies {
        let drugs: Vec<&str> = policy
            .drugs
            .iter()
            .filter_map(|d| {
                engine
                    .catalog
                    .drugs
                    .get(usize::from(*d))
                    .map(|drug| drug.id.as_str())
            })
            .collect();
        outln!("{}", policy.id);
        outln!("  {}", policy.title);
        outln!(
            "  payer: {}; document: {}; source: policies/sources/{}",
            policy.payer,
            policy.document,
            policy.source_file
        );
        outln!(
            "  version: {}; effective: {}",
            policy.version,
            policy
                .effective
                .map_or_else(|| "not stated".to_string(), |d| d.to_string())
        );
        outln!("  drugs: {}", drugs.join(", "));
        let lines: Vec<&str> = match policy.lines_of_business {
            None => vec!["all (none stated)"],
            Some(mask) => priorauth_core::case::LineOfBusiness::VARIANTS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, name)| *name)
                .collect(),
        };
        outln!("  lines of business: {}", lines.join(", "));
        let pathways: Vec<String> = policy
            .pathways
            .iter()
            .map(|p| match p.authorization {
                Some(duration) => format!("{} ({})", p.id, duration),
                None => format!(
                    "{} ({})",
                    p.id,
                    if p.outcome == priorauth_core::Outcome::Review {
                        "review"
                    } else {
                        "no duration stated"
                    }
                ),
            })
            .collect();
        outln!("  pathways: {}", pathways.join(", "));
        outln!(
            "  criteria: {}; exclusions: {}\n",
            policy.criteria.len(),
            policy.exclusions.len()
        );
    }
    Ok(())
}

fn generate_cases(count: u64, seed: u64, unknown_percent: u64) -> Result<(), String> {
    let mut rng = generate::Rng::new(seed);
    let mut out = BufWriter::new(io::stdout().lock());
    for index in 0..count {
        let case = generate::case(&mut rng, index, unknown_percent);
        serde_json::to_writer(&mut out, &case).map_err(json_write_error)?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}

/// A `YYYY-MM-DD` argument.
fn parse_date(text: &str) -> Result<priorauth_core::date::Date, String> {
    use priorauth_core::case::{EARLIEST_DATE, LATEST_DATE};
    let date = priorauth_core::date::Date::parse(text)
        .ok_or_else(|| format!("`{text}` is not a date (YYYY-MM-DD)"))?;
    if (EARLIEST_DATE..=LATEST_DATE).contains(&date) {
        Ok(date)
    } else {
        Err(format!(
            "{date} is not a possible date (between {EARLIEST_DATE} and {LATEST_DATE})"
        ))
    }
}
