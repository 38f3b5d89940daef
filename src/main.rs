//! The `kafkachain` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    kafkachain::cli::main()
}
