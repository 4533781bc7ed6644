//! The service commands: `serve`, `keys`, `audit verify`, `report um`, `history generate`. Each runs its own async runtime;
//! the rest of the CLI stays synchronous.

use std::path::Path;

use priorauth_core::Engine;
use priorauth_service::keys::{self, Role};
use priorauth_service::{Store, database_url, store};

use crate::{ClientsCommand, KeysCommand};

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))
}

async fn connect() -> Result<Store, String> {
    Store::connect(&database_url())
        .await
        .map_err(|e| e.to_string())
}

pub fn serve(
    engine: Engine,
    listen: &str,
    plans: Option<&Path>,
    policies: Option<&Path>,
) -> Result<(), String> {
    let plans_text = read_plans(plans)?;
    // Policies of a directory need plans naming them: the bundled plans name the bundled ones.
    let plans_hint = |error: String| match (policies, plans) {
        (Some(dir), None) => format!(
            "{error}\nThe bundled plans (config/plans.toml) name the bundled policies; the policies of {} need a plans file naming them: copy config/plans.toml, give each plan `policies = {{ DRUG = \"POLICY-ID\" }}` from `priorauth --policies {} policies`, and pass --plans FILE (`priorauth policy new` prints a plan entry)",
            dir.display(),
            dir.display()
        ),
        _ => error,
    };
    let unplanned: Vec<String> = engine
        .current()
        .iter()
        .filter_map(|i| engine.policies.get(*i))
        .map(|p| p.id.clone())
        .collect();
    runtime()?.block_on(async {
        let url = database_url();
        let state = priorauth_service::state(engine, plans_text.as_deref(), &url)
            .await
            .map_err(plans_hint)?;
        let planned: Vec<&String> = state
            .service
            .plans
            .plans
            .iter()
            .flat_map(|p| p.policies.values())
            .collect();
        for id in unplanned.iter().filter(|id| !planned.contains(id)) {
            eprintln!(
                "note: policy `{id}` is in no plan, so the service decides no request by it: add a plan naming it to the plans file (--plans FILE)"
            );
        }
        let listener = bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let backend = if url.starts_with("sqlite:") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        eprintln!(
            "priorauth serving on http://{} ({backend})",
            listener
                .local_addr()
                .map_or_else(|_| listen.to_string(), |a| a.to_string())
        );
        priorauth_service::serve(state, listener)
            .await
            .map_err(|e| format!("server: {e}"))
    })
}

/// A listening socket with room for 4,096 connections waiting to be accepted (tokio's
/// `bind` leaves 1,024): a burst of connections, a thousand of them an attacker's, must not
/// make the kernel drop a clinic's, which it would retry only a second later.
async fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let address = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}

pub fn keys(command: KeysCommand) -> Result<(), String> {
    runtime()?.block_on(async {
        let store = connect().await?;
        match command {
            KeysCommand::Create {
                organization,
                role,
                name,
                credentials,
            } => {
                let role = Role::parse(&role).ok_or_else(|| {
                    format!("unknown role `{role}` (submitter, reviewer or admin)")
                })?;
                let (id, secret) = keys::create(&store, &organization, role, &name, &credentials)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "id: {id}\nkey: {secret}\n(the key is shown once; only its hash is stored)"
                );
                Ok(())
            }
            KeysCommand::List => {
                let listed = keys::list(&store).await.map_err(|e| e.to_string())?;
                let time = priorauth_service::lifecycle::timestamp;
                let mut out =
                    String::from("id\torganization\trole\tname\tcredentials\tcreated\trevoked\n");
                for key in &listed {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                        key.id,
                        key.organization,
                        key.role,
                        key.name,
                        key.credentials,
                        time(key.created_at),
                        key.revoked_at.map_or_else(|| "-".to_string(), time)
                    ));
                }
                crate::write_stdout(&out)
            }
            KeysCommand::Revoke { id } => {
                match keys::revoke(&store, &id).await.map_err(|e| e.to_string())? {
                    true => Ok(()),
                    false => Err(format!("no active key `{id}`")),
                }
            }
        }
    })
}

/// True when the log verifies.
pub fn verify() -> Result<bool, String> {
    runtime()?.block_on(async {
        let report = store::verify_audit(&connect().await?)
            .await
            .map_err(|e| e.to_string())?;
        if report.problems.is_empty() {
            println!(
                "audit log verified: {} entries; {} records match the entries that last wrote them",
                report.entries, report.records
            );
            Ok(true)
        } else {
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "audit log does NOT verify ({} problems in {} entries)",
                report.problems.len(),
                report.entries
            );
            Ok(false)
        }
    })
}

/// `priorauth clients`: register, revoke and list the clients that sign their own
/// credentials (SMART Backend Services, CDS Hooks).
pub fn clients(command: ClientsCommand) -> Result<(), String> {
    use priorauth_service::trust;
    runtime()?.block_on(async {
        let store = connect().await?;
        match command {
            ClientsCommand::Register {
                id,
                organization,
                role,
                name,
                jwks,
            } => {
                let role = Role::parse(&role).ok_or_else(|| {
                    format!("unknown role `{role}` (submitter, reviewer or admin)")
                })?;
                let jwks = std::fs::read_to_string(&jwks)
                    .map_err(|e| format!("cannot read `{}`: {e}", jwks.display()))?;
                trust::register(&store, &id, &organization, role, &name, &jwks).await?;
                println!("client: {id}");
            }
            ClientsCommand::Revoke { id } => {
                if !trust::revoke(&store, &id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("no active client `{id}`"));
                }
            }
            ClientsCommand::List => {
                for (id, organization, role, name, revoked) in
                    trust::list(&store).await.map_err(|e| e.to_string())?
                {
                    let state = if revoked { "revoked" } else { "-" };
                    println!("{id}\t{organization}\t{role}\t{name}\t{state}");
                }
            }
        }
        store.pool.close().await;
        Ok(())
    })
}

/// `priorauth members import`: the payer's eligibility, checked whole, then written in one
/// transaction with one audit entry.
pub fn import_members(engine: Engine, file: &Path, plans: Option<&Path>) -> Result<(), String> {
    use priorauth_service::lifecycle::members;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let plans_text = read_plans(plans)?;
    let problem = |error: priorauth_service::lifecycle::Error| match error {
        priorauth_service::lifecycle::Error::Invalid(problems) => problems
            .iter()
            .map(|(field, message)| format!("{}: {field}: {message}", file.display()))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    };
    runtime()?.block_on(async {
        let state =
            priorauth_service::state(engine, plans_text.as_deref(), &database_url()).await?;
        let rows = members::parse(&state.service, &text).map_err(problem)?;
        members::import(&state.service, &operator("priorauth members import"), &rows)
            .await
            .map_err(problem)?;
        eprintln!("imported {} enrolments", rows.len());
        Ok(())
    })
}

/// The text of a plans file, when one is given.
fn read_plans(plans: Option<&Path>) -> Result<Option<String>, String> {
    plans
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))
        })
        .transpose()
}

/// The operator at the database's machine, as `keys` is: an admin of the payer.
fn operator(name: &str) -> priorauth_service::keys::Caller {
    priorauth_service::keys::Caller {
        key_id: "cli".into(),
        organization: "payer".into(),
        role: Role::Admin,
        name: name.into(),
        credentials: String::new(),
    }
}

/// Prints the UM report of DATABASE_URL's records; its reading is audited as the operator's.
pub fn um_report(
    engine: Engine,
    from: &str,
    to: &str,
    format: &str,
    plans: Option<&Path>,
) -> Result<(), String> {
    use priorauth_service::lifecycle::report::{self, Format, UmQuery};
    let plans_text = read_plans(plans)?;
    let problem = |error: priorauth_service::lifecycle::Error| match error {
        priorauth_service::lifecycle::Error::Invalid(problems) => problems
            .iter()
            .map(|(field, message)| format!("--{field}: {message}"))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    };
    let format = Format::parse(Some(format)).map_err(problem)?;
    runtime()?.block_on(async {
        let state =
            priorauth_service::state(engine, plans_text.as_deref(), &database_url()).await?;
        let operator = operator("priorauth report um");
        let query = UmQuery {
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            format: None,
        };
        let report = report::um(&state.service, &operator, &query)
            .await
            .map_err(problem)?;
        let text = match format {
            Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
            Format::Markdown => report.to_markdown(),
            Format::Csv => report.to_csv(),
            Format::Html => report.to_html(),
        };
        print!("{text}");
        state.service.store.pool.close().await;
        Ok(())
    })
}

/// Fills a fresh database with a generated past (`priorauth_service::history`).
pub fn generate_history(
    engine: Engine,
    requests: u64,
    days: i64,
    seed: u64,
    plans: Option<&Path>,
) -> Result<(), String> {
    if !(1..=3_650).contains(&days) {
        return Err("--days: from 1 to 3650".into());
    }
    let plans_text = read_plans(plans)?;
    runtime()?.block_on(async {
        let state =
            priorauth_service::state(engine, plans_text.as_deref(), &database_url()).await?;
        let started = std::time::Instant::now();
        let spec = priorauth_service::history::Spec {
            requests,
            days,
            seed,
        };
        let summary = priorauth_service::history::generate(&state.service, spec).await?;
        for (what, n) in &summary.done {
            println!("{n:>9} {what}");
        }
        for (why, n) in &summary.refused {
            println!("{n:>9} refused: {why}");
        }
        println!("written in {:.1} s", started.elapsed().as_secs_f64());
        state.service.store.pool.close().await;
        Ok(())
    })
}
