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

mod tools;

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
    /// Decide cases (spec/case-format.md) against every policy, or the ones named.
    Evaluate {
        /// Case files; `-` reads standard input.
        #[arg(value_name = "CASE.json", required_unless_present = "batch")]
        cases: Vec<PathBuf>,
        /// Only this policy (repeatable).
        #[arg(long = "policy", value_name = "ID")]
        policy: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Decide one case per line of a JSONL file (`-`: standard input), writing one
        /// decision per line. Invalid lines are answered with an error object.
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
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Find impossible, hidden and overlapping pathways, unused criteria, quotes not in the
    /// document and unstated outcomes. Without FILES: the loaded policies. Exit 5 when a
    /// finding is not acknowledged in its file (`[lint] acknowledged`).
    Lint { files: Vec<PathBuf> },
    /// The criteria, pathways and applicability that changed between two versions.
    Diff { old: PathBuf, new: PathBuf },
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
    /// Revoke a key by its id.
    Revoke { id: String },
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
            batch,
            received,
        } => {
            let selected = match select(&engine, &policy) {
                Ok(selected) => selected,
                Err(message) => return fail(&message),
            };
            match batch {
                Some(path) => run_batch(&engine, &path, &selected, received),
                None => evaluate(&engine, &cases, &selected, format, received),
            }
        }
        Command::Policies => {
            list_policies(&engine);
            Ok(())
        }
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
        Command::Report {
            command:
                ReportCommand::Coverage {
                    scenarios,
                    cases,
                    out,
                },
        } => tools::coverage(&engine, &scenarios, &cases, &out),
        Command::Impact {
            from,
            to,
            cases,
            examples,
        } => tools::impact(&engine, &from, &to, &cases, examples),
        Command::Serve { listen, plans } => service::serve(engine, &listen, plans.as_deref()),
        Command::Keys { command } => service::keys(command),
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

fn evaluate(
    engine: &Engine,
    paths: &[PathBuf],
    selected: &[usize],
    format: Format,
    received: Option<priorauth_core::date::Date>,
) -> Result<(), String> {
    let mut out = io::stdout().lock();
    for path in paths {
        let text = read_input(path)?;
        let case = engine
            .parse_case(&text)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let evaluation = engine
            .evaluate_received(&case, selected, received)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let rendered = match format {
            Format::Json => serde_json::to_string_pretty(&Report::new(engine, &case, &evaluation))
                .map_err(|e| format!("cannot write the decision: {e}"))?,
            Format::Text => report::text(engine, &case, &evaluation),
        };
        writeln!(out, "{rendered}").map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(())
}

/// Streams one decision per input line, so a run of any size needs constant memory.
fn run_batch(
    engine: &Engine,
    path: &Path,
    selected: &[usize],
    received: Option<priorauth_core::date::Date>,
) -> Result<(), String> {
    let input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Box::new(io::BufReader::with_capacity(1 << 16, file))
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut invalid = 0usize;
    let write_error = |e: io::Error| format!("cannot write: {e}");
    let mut buffer = Vec::with_capacity(1 << 16);
    let mut evaluation = priorauth_core::Evaluation::default();
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read line {}: {e}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Err(error) = report::decide_line(
            engine,
            &line,
            selected,
            received,
            &mut evaluation,
            &mut buffer,
        ) {
            invalid += 1;
            let problems: Vec<_> = error
                .problems
                .iter()
                .map(|p| serde_json::json!({"key": p.key, "message": p.message}))
                .collect();
            let object = serde_json::json!({"line": number + 1, "error": error.to_string(), "problems": problems});
            serde_json::to_writer(&mut buffer, &object)
                .map_err(|e| format!("cannot write: {e}"))?;
            buffer.push(b'\n');
        }
        if buffer.len() >= 1 << 15 {
            out.write_all(&buffer).map_err(write_error)?;
            buffer.clear();
        }
    }
    out.write_all(&buffer).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    if invalid > 0 {
        return Err(format!(
            "{invalid} invalid case line(s); each is answered with an error object"
        ));
    }
    Ok(())
}

fn list_policies(engine: &Engine) {
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
        println!("{}", policy.id);
        println!("  {}", policy.title);
        println!(
            "  payer: {}; document: {}; source: policies/sources/{}",
            policy.payer, policy.document, policy.source_file
        );
        println!(
            "  version: {}; effective: {}",
            policy.version,
            policy
                .effective
                .map_or_else(|| "not stated".to_string(), |d| d.to_string())
        );
        println!("  drugs: {}", drugs.join(", "));
        let lines: Vec<&str> = match policy.lines_of_business {
            None => vec!["all (none stated)"],
            Some(mask) => priorauth_core::case::LineOfBusiness::VARIANTS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, name)| *name)
                .collect(),
        };
        println!("  lines of business: {}", lines.join(", "));
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
        println!("  pathways: {}", pathways.join(", "));
        println!(
            "  criteria: {}; exclusions: {}\n",
            policy.criteria.len(),
            policy.exclusions.len()
        );
    }
}

fn generate_cases(count: u64, seed: u64, unknown_percent: u64) -> Result<(), String> {
    let mut rng = generate::Rng::new(seed);
    let mut out = BufWriter::new(io::stdout().lock());
    for index in 0..count {
        let case = generate::case(&mut rng, index, unknown_percent);
        serde_json::to_writer(&mut out, &case).map_err(|e| format!("cannot write: {e}"))?;
        out.write_all(b"\n")
            .map_err(|e| format!("cannot write: {e}"))?;
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))
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
