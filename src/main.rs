//! The `tessera` command-line program.

fn main() {
    std::process::exit(tessera_ssl::cli::main());
}
