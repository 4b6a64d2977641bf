//! The `dockhand` binary: parse the command line, run, and turn the outcome
//! into an exit code. Errors are printed here and nowhere else.

fn main() {
    let code = match dockhand::cli::run() {
        Ok(code) => code,
        Err(err) => {
            dockhand::report::error(&err);
            err.exit_code()
        }
    };
    std::process::exit(code);
}
