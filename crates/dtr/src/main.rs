fn main() {
    std::process::exit(dtr::cli::main());
}
