//! `st2d user add NAME [--password-stdin] [--users-file FILE]`: add a user to the htpasswd
//! users file, or change their password.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use st2_core::crypto::Secret;
use st2d::server::htpasswd::HtpasswdFile;
use st2d::server::serve::random_password;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user or set their password (bcrypt). Without --password-stdin a random password
    /// is made and printed once.
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user name.
    name: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The users file [default: <data-dir>/users.htpasswd].
    #[arg(long, env = "ST2D_USERS_FILE", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// The data directory whose users file to change [default: ./st2d-data].
    #[arg(long, env = "ST2D_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(command: UserCommand) -> ExitCode {
    let UserCommand::Add(args) = command;
    let path = args.users_file.clone().unwrap_or_else(|| {
        args.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("st2d-data"))
            .join("users.htpasswd")
    });
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("error: reading the password from stdin: {e}");
            return ExitCode::from(2);
        }
        (
            Secret::new(line.trim_end_matches(['\r', '\n']).to_owned()),
            false,
        )
    } else {
        match random_password(20) {
            Ok(p) => (Secret::new(p), true),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match HtpasswdFile::new(&path).set_user(&args.name, &password) {
        Ok(()) => {
            if generated {
                println!(
                    "User \"{}\" saved in {} with password: {}",
                    args.name,
                    path.display(),
                    password.expose()
                );
            } else {
                println!("User \"{}\" saved in {}", args.name, path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
