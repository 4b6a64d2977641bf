//! The command line, sealed in one module: clap definitions here, turned
//! into plain option structs for `commands`, which never see clap.

use crate::core::input::limit::Shard;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands;
use crate::error::Result;

#[derive(Debug, Parser)]
#[command(
    name = "dockhand",
    version,
    about = "Secure Docker daemons across a fleet, declaratively, over SSH"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to every host of an inventory over SSH and report what answers
    /// (host name, login user, docker state): the transport check.
    Ping {
        /// The inventory file (YAML).
        #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
        inventory: PathBuf,
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Print what dockhand understood of an inventory (dockhand's own,
    /// Ansible's YAML or INI, or a dynamic inventory script): each host,
    /// its address, groups, SSH settings and variables. Contacts no host.
    Inventory {
        /// The inventory: a file, or an executable run with --list.
        #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
        inventory: PathBuf,
        /// Host names, group names and globs, comma-separated.
        #[arg(long, value_name = "PATTERN")]
        limit: Option<String>,
        /// Only part I of N of the selection (see plan --help).
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        #[arg(long, value_enum, default_value_t = InventoryFormatArg::Yaml)]
        format: InventoryFormatArg,
    },
    /// Show, per host, what applying the playbook would change: unified
    /// diffs, modes, owners, handlers. Never writes to a host.
    Plan {
        #[command(flatten)]
        selection: SelectionArgs,
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        /// Exit 2 when changes are pending (0: nothing to do, 1: error).
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Apply the playbook: write atomically, run the notified handlers,
    /// verify each host, and roll a host back if it does not verify.
    Apply {
        #[command(flatten)]
        selection: SelectionArgs,
        /// Rolling batches: N hosts, P% of them, or a list whose last size
        /// repeats (1,10%,100%: a canary, then growing batches); each batch
        /// is finished (applied and verified) before the next starts.
        #[arg(long, value_name = "N|P%|LIST")]
        serial: Option<crate::core::input::rollout::Serial>,
        /// Stop when more than P% of a batch failed; later batches are not touched.
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u8).range(0..=100))]
        max_fail_percent: Option<u8>,
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        /// Do not show the plan and ask first (only asked on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        /// Replace the CA that a host trusts when it is not this store's
        /// (every client that CA signed is cut off from the host).
        #[arg(long)]
        replace_ca: bool,
        /// A file holding the CA key's passphrase, when it must sign
        /// (else DOCKHAND_CA_PASSPHRASE, else a prompt on a terminal).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check every host without changing anything: mutual TLS to the
    /// daemon, clients without a certificate refused, sshd -T, SSH login.
    Verify {
        #[command(flatten)]
        selection: SelectionArgs,
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Audit every host without changing anything: the CIS Docker
    /// Benchmark's daemon and file checks (from the daemon's effective
    /// configuration) and sshd's effective settings. Exit 1 on any FAIL.
    Audit {
        /// The inventory file (YAML).
        #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
        inventory: PathBuf,
        /// Host names, group names and globs, comma-separated.
        #[arg(long, value_name = "PATTERN")]
        limit: Option<String>,
        /// Only part I of N of the selection (see plan --help).
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Docker contexts for the selected hosts, `dockhand-HOST`: over
    /// mutual TLS with a client bundle, or over SSH (`access: ssh`) through
    /// an alias in ~/.ssh/dockhand.conf, which ~/.ssh/config includes.
    Context {
        #[command(subcommand)]
        action: ContextAction,
    },
    /// The local CA and client certificate bundles.
    Pki {
        #[command(subcommand)]
        action: PkiAction,
        /// Take the pki settings (dir, key type, validity) from this playbook.
        #[arg(long, short = 'p', global = true, value_name = "PLAYBOOK")]
        playbook: Option<PathBuf>,
        /// A file holding the CA key's passphrase (else
        /// DOCKHAND_CA_PASSPHRASE, else a prompt on a terminal).
        #[arg(long, global = true, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh or fish) on stdout, e.g.
    /// `dockhand completions bash > /etc/bash_completion.d/dockhand`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g.
    /// `dockhand man > /usr/local/share/man/man1/dockhand.1`.
    Man,
    /// Disposable local Debian hosts (systemd, OpenSSH, dockerd) to try
    /// playbooks on; needs root.
    Lab {
        #[command(subcommand)]
        action: LabAction,
        /// Which lab: several can run side by side.
        #[arg(long, global = true, env = "DOCKHAND_LAB", default_value = "lab")]
        name: String,
        /// Where labs keep their state.
        #[arg(
            long,
            global = true,
            env = "DOCKHAND_LAB_DIR",
            default_value = "/var/lib/dockhand/labs",
            hide = true
        )]
        state_dir: PathBuf,
        /// Where the shared root file system is cached.
        #[arg(
            long,
            global = true,
            env = "DOCKHAND_LAB_CACHE",
            default_value = "/var/cache/dockhand",
            hide = true
        )]
        cache_dir: PathBuf,
    },
}

/// The inventory, the playbook and `--limit`: shared by plan, apply, verify.
#[derive(Debug, clap::Args)]
struct SelectionArgs {
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    inventory: PathBuf,
    /// The playbook (YAML), e.g. playbooks/docker-tls.yaml.
    #[arg(value_name = "PLAYBOOK")]
    playbook: PathBuf,
    /// Host names, group names and globs, comma-separated.
    #[arg(long, value_name = "PATTERN")]
    limit: Option<String>,
    /// Only part I of N of the selection, split by host name (a stable
    /// hash): N CI jobs with 1/N … N/N cover every host exactly once.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    #[command(flatten)]
    access: AccessArgs,
}

/// How hosts are reached and acted on: shared by every command that
/// visits hosts.
#[derive(Debug, clap::Args)]
struct AccessArgs {
    /// Read this ssh_config instead of ~/.ssh/config (as `ssh -F`).
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Ask for the sudo password of hosts with `become` (once, on the terminal).
    #[arg(short = 'K', long)]
    ask_become_pass: bool,
    /// A file holding the sudo password (else DOCKHAND_BECOME_PASSWORD).
    #[arg(long, value_name = "FILE")]
    become_password_file: Option<PathBuf>,
}

impl AccessArgs {
    fn into_access(self, ca_passphrase_file: Option<PathBuf>) -> crate::engine::load::Access {
        crate::engine::load::Access {
            ssh_config: self.ssh_config,
            ask_become_password: self.ask_become_pass,
            become_password_file: self.become_password_file,
            ca_passphrase_file,
        }
    }
}

/// How a command that visits hosts runs: shared by ping, plan, apply, verify.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// How many hosts to work on at once. Each one in flight holds an SSH
    /// connection (two while it converges) and costs dockhand up to about
    /// 0.4 MiB.
    #[arg(long, default_value_t = commands::FORKS as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    forks: u32,
    /// The deadline of each remote step, in seconds (default: 60, and 300
    /// for replacing files and restarting services).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: Option<u64>,
    /// Progress on stderr: bars on a terminal, plain lines elsewhere (auto).
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Also show when each step ends, and how long it took.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProgressArg {
    Auto,
    Bars,
    Plain,
    None,
}

impl From<RunArgs> for commands::Run {
    fn from(args: RunArgs) -> Self {
        use crate::report::progress::Mode;
        commands::Run {
            forks: args.forks as usize,
            progress: match args.progress {
                ProgressArg::Auto => Mode::Auto,
                ProgressArg::Bars => Mode::Bars,
                ProgressArg::Plain => Mode::Plain,
                ProgressArg::None => Mode::None,
            },
            verbose: args.verbose,
            timeout: args.timeout.map(std::time::Duration::from_secs),
        }
    }
}

impl From<SelectionArgs> for crate::engine::load::Selection {
    fn from(args: SelectionArgs) -> Self {
        crate::engine::load::Selection {
            inventory: args.inventory,
            playbook: args.playbook,
            limit: args.limit,
            shard: args.shard,
            access: args.access.into_access(None),
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InventoryFormatArg {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

impl From<FormatArg> for crate::report::Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Human => crate::report::Format::Human,
            FormatArg::Json => crate::report::Format::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ContextAction {
    /// Create (or update) a context per host.
    Create {
        #[command(flatten)]
        selection: SelectionArgs,
        /// The client certificate the TLS contexts present.
        #[arg(long, value_name = "NAME", default_value = "admin")]
        client: String,
        /// Log in as this user in the SSH contexts (default: the inventory's).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Remove the contexts (and ssh aliases) dockhand made for the hosts.
    Rm {
        #[command(flatten)]
        selection: SelectionArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PkiAction {
    /// Create the CA if there is none.
    Init {
        /// Keep the CA key encrypted (PKCS#8, AES-256); a plain key that
        /// exists is encrypted in place. Signing then needs the passphrase.
        #[arg(long)]
        encrypt: bool,
    },
    /// Adopt a CA made elsewhere (e.g. by hand with openssl, as the Docker
    /// guide does) into an empty store, so every client it signed keeps
    /// working. Its key is kept encrypted.
    Import {
        /// The CA certificate (PEM).
        #[arg(long, value_name = "FILE")]
        ca_cert: PathBuf,
        /// The CA key: PKCS#8, SEC1 or PKCS#1 PEM, encrypted or not.
        #[arg(long, value_name = "FILE")]
        ca_key: PathBuf,
    },
    /// Issue (or reuse) a client certificate and write ca.pem, cert.pem and
    /// key.pem (0600) to DIR, for DOCKER_CERT_PATH; print the exports for
    /// the docker CLI, and create docker contexts with --context.
    Client {
        name: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The inventory of the hosts the exports and contexts name.
        #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
        inventory: Option<PathBuf>,
        /// Print DOCKER_HOST for this host of the inventory too.
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Create (or update) a docker context per host of the inventory
        /// (only --host's with --host), with the docker CLI.
        #[arg(long)]
        context: bool,
    },
    /// Rotate the CA in three steps, each followed by an apply: `start`
    /// (a new CA trusted beside the old), `switch` (the new CA issues; the
    /// old still trusted), `finish` (the old CA dropped).
    Rotate {
        #[arg(value_parser = ["start", "switch", "finish"])]
        step: String,
    },
    /// List the CA and every certificate: subject, SANs, issuer, expiry and
    /// days left.
    List {
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
    },
}

#[derive(Debug, Subcommand)]
enum LabAction {
    /// Boot N hosts (default: keep the current number, or 3), wait until each
    /// answers SSH with docker active, and write the lab's inventory.
    Up {
        #[arg(value_name = "N")]
        count: Option<usize>,
        /// The Debian release the hosts run (default: the lab's own, or
        /// bookworm); hosts of another release are replaced.
        #[arg(long, value_enum)]
        release: Option<ReleaseArg>,
    },
    /// Stop every host and remove the lab's namespaces, links and mounts.
    Down,
    /// Show the lab's hosts and whether each is running.
    Status,
    /// Print the lab's inventory (YAML) on stdout.
    Inventory,
}

/// `lab up --release`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReleaseArg {
    /// Debian 11: dockerd 20.10, OpenSSH 8.4.
    Bullseye,
    /// Debian 12: dockerd 20.10, OpenSSH 9.2.
    Bookworm,
    /// Debian 13: dockerd 26.1 (with `--validate`), OpenSSH 10.0.
    Trixie,
    /// Debian 14 (testing): dockerd 28, OpenSSH 10.6.
    Forky,
}

impl From<ReleaseArg> for crate::lab::Release {
    fn from(arg: ReleaseArg) -> Self {
        match arg {
            ReleaseArg::Bullseye => crate::lab::Release::Bullseye,
            ReleaseArg::Bookworm => crate::lab::Release::Bookworm,
            ReleaseArg::Trixie => crate::lab::Release::Trixie,
            ReleaseArg::Forky => crate::lab::Release::Forky,
        }
    }
}

/// Parses the process arguments and runs the command; returns the exit code.
pub fn run() -> Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap would exit 2 on bad usage; the contract keeps 2 for pending
        // changes under `plan --detailed-exitcode`, and bad input is 1.
        Err(err) => {
            let _ = err.print();
            return Ok(if err.use_stderr() { 1 } else { 0 });
        }
    };
    match cli.command {
        Command::Inventory {
            inventory,
            limit,
            shard,
            format,
        } => commands::inventory::run(
            &inventory,
            limit.as_deref(),
            shard,
            matches!(format, InventoryFormatArg::Json),
        ),
        Command::Ping {
            inventory,
            format,
            access,
            run,
        } => commands::ping::run(&commands::ping::Options {
            inventory,
            format: format.into(),
            access: access.into_access(None),
            run: run.into(),
        }),
        Command::Plan {
            selection,
            format,
            detailed_exitcode,
            run,
        } => commands::plan::run(&commands::plan::Options {
            selection: selection.into(),
            format: format.into(),
            detailed_exitcode,
            run: run.into(),
        }),
        Command::Apply {
            selection,
            serial,
            max_fail_percent,
            format,
            yes,
            replace_ca,
            passphrase_file,
            run,
        } => commands::apply::run(&commands::apply::Options {
            selection: {
                let mut selection: crate::engine::load::Selection = selection.into();
                selection.access.ca_passphrase_file = passphrase_file;
                selection
            },
            replace_ca,
            rollout: crate::engine::fleet::Rollout {
                serial,
                max_fail_percent,
            },
            format: format.into(),
            yes,
            run: run.into(),
        }),
        Command::Verify {
            selection,
            format,
            run,
        } => commands::verify::run(&commands::verify::Options {
            selection: selection.into(),
            format: format.into(),
            run: run.into(),
        }),
        Command::Audit {
            inventory,
            limit,
            shard,
            format,
            access,
            run,
        } => commands::audit::run(&commands::audit::Options {
            inventory,
            limit,
            shard,
            access: access.into_access(None),
            format: format.into(),
            run: run.into(),
        }),
        Command::Context { action } => {
            let (selection, client, user, remove) = match action {
                ContextAction::Create {
                    selection,
                    client,
                    user,
                } => (selection, client, user, false),
                ContextAction::Rm { selection } => (selection, String::new(), None, true),
            };
            commands::context::run(&commands::context::Options {
                selection: selection.into(),
                client,
                user,
                remove,
            })
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dockhand", &mut out);
            crate::report::raw_stdout(&String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| {
                    crate::error::Error::Usage(format!("cannot render the manual: {e}"))
                })?;
            crate::report::raw_stdout(&String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Pki {
            action,
            playbook,
            passphrase_file,
        } => {
            let store = || commands::pki::store(playbook.as_deref(), passphrase_file.clone());
            match action {
                PkiAction::Init { encrypt } => commands::pki::init(&store()?, encrypt),
                PkiAction::Import { ca_cert, ca_key } => {
                    commands::pki::import(&store()?, &ca_cert, &ca_key)
                }
                PkiAction::Client {
                    name,
                    out,
                    inventory,
                    host,
                    context,
                } => commands::pki_client::client(
                    &store()?,
                    playbook.as_deref(),
                    &commands::pki_client::ClientOptions {
                        name,
                        out,
                        inventory,
                        host,
                        context,
                    },
                ),
                PkiAction::List { format } => commands::pki::list(&store()?, format.into()),
                PkiAction::Rotate { step } => commands::pki::rotate(&store()?, &step),
            }
        }
        Command::Lab {
            action,
            name,
            state_dir,
            cache_dir,
        } => {
            let lab = crate::lab::Lab::new(&name, state_dir, cache_dir)?;
            match action {
                LabAction::Up { count, release } => {
                    commands::lab::up(&lab, count, release.map(Into::into))
                }
                LabAction::Down => commands::lab::down(&lab),
                LabAction::Status => commands::lab::status(&lab),
                LabAction::Inventory => commands::lab::inventory(&lab),
            }
        }
    }
}
