//! `cairn token new`: a random bearer token and the SHA-256 digest the nodes keep of it (they
//! never see the token itself in their configuration).

use std::path::Path;

use cairn_client::Token;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a new random token and the `[[auth.tokens]]` entry naming its principal.
    New {
        /// Whose token it is: the principal ACLs name.
        #[arg(long)]
        principal: String,
    },
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New { principal } => new(&principal),
    }
}

fn new(principal: &str) -> anyhow::Result<()> {
    if principal.is_empty() || principal == "*" || principal.contains([' ', ',']) {
        anyhow::bail!("--principal {principal:?}: a name without spaces or commas, not `*`");
    }
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let token = format!("cairn_{}", hex(&bytes));
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    println!(
        "token (give it to the client: CAIRN_TOKEN, --token-file; it is shown only now):\n  {token}\n\n\
         for every node's configuration file:\n  [[auth.tokens]]\n  principal = \"{principal}\"\n  sha256 = \"{digest}\"\n\n\
         or as a flag: --auth-token {principal}:{digest}"
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in `path` (its first line).
pub fn read_file(path: &Path) -> anyhow::Result<Token> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        anyhow::bail!("{}: holds no token", path.display());
    }
    Ok(Token::new(line))
}
