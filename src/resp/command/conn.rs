//! Parsers for the commands a connection answers itself: PING, HELLO, AUTH, CLIENT, COMMAND, CONFIG, INFO, ...
//!
//! Only syntax is checked here (HELLO's protocol version, client names); the runtime owns the connection's state
//! and answers them, with `introspect::command_reply` for COMMAND and HELP.

use bytes::Bytes;

use super::args::{int, is, take, text};
use super::{ClientAttr, ConnCommand, Parsed};
use crate::core::replication::{Consistency, Levels, UnknownLevel};
use crate::core::reply::{err_wrong_arity, Reply, ERR_SYNTAX};

/// A connection command, parsed.
fn conn(command: ConnCommand) -> Result<Parsed, Reply> {
    Ok(Parsed::Conn(command))
}

/// The arguments after the command name and subcommand.
fn after_subcommand(mut args: Vec<Bytes>) -> Vec<Bytes> {
    args.drain(..2.min(args.len()));
    args
}

/// Whether a client name or attribute uses only printable ASCII without spaces (Redis's rule).
fn printable(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// A client name, checked.
fn client_name(name: Bytes) -> Result<Bytes, Reply> {
    if !printable(&name) {
        return Err(Reply::err("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(name)
}

/// An `on` / `off` switch, any case.
fn on_off(arg: &[u8]) -> Result<bool, Reply> {
    match () {
        _ if is(arg, "on") => Ok(true),
        _ if is(arg, "off") => Ok(false),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

/// PING [message].
pub(crate) fn ping(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    match args.len() {
        1 => conn(ConnCommand::Ping(None)),
        2 => conn(ConnCommand::Ping(Some(take(&mut args, 1)))),
        _ => Err(err_wrong_arity("ping")),
    }
}

/// ECHO message.
pub(crate) fn echo(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Echo(take(&mut args, 1)))
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]].
pub(crate) fn hello(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let mut proto = None;
    if args.len() >= 2 {
        let version =
            int(&args[1]).map_err(|_| Reply::err("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&version) {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        proto = Some(version);
    }
    let (mut auth, mut setname) = (None, None);
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "auth") && more >= 2 {
            auth = Some((take(&mut args, j + 1), take(&mut args, j + 2)));
            j += 3;
        } else if is(&args[j], "setname") && more >= 1 {
            setname = Some(client_name(take(&mut args, j + 1))?);
            j += 2;
        } else {
            return Err(Reply::error(format!("ERR Syntax error in HELLO option '{}'", text(&args[j]))));
        }
    }
    conn(ConnCommand::Hello { proto, auth, setname })
}

/// AUTH [username] password.
pub(crate) fn auth(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    match args.len() {
        2 => conn(ConnCommand::Auth { user: None, pass: take(&mut args, 1) }),
        3 => conn(ConnCommand::Auth { user: Some(take(&mut args, 1)), pass: take(&mut args, 2) }),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

/// SELECT index.
pub(crate) fn select(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Select(int(&args[1])?))
}

/// QUIT.
pub(crate) fn quit(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Quit)
}

/// RESET.
pub(crate) fn reset(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Reset)
}

/// TIME.
pub(crate) fn time(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Time)
}

/// INFO [section ...].
pub(crate) fn info(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Info(args[1..].iter().map(|s| text(s).to_ascii_lowercase()).collect()))
}

/// SHOAL.CONSISTENCY [read write].
pub(crate) fn consistency(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    match args.len() {
        1 => conn(ConnCommand::Consistency(None)),
        3 => conn(ConnCommand::Consistency(Some(Levels { read: level(&args[1])?, write: level(&args[2])? }))),
        _ => Err(err_wrong_arity("shoal.consistency")),
    }
}

/// A consistency level by name, any case; the error shows at most 128 bytes of a wrong name.
fn level(arg: &[u8]) -> Result<Consistency, Reply> {
    text(arg).parse().map_err(|_| Reply::error(format!("ERR {}", UnknownLevel(text(&arg[..arg.len().min(128)])))))
}

/// A container called without a subcommand (its arity refuses this before; kept for the table's shape).
pub(crate) fn container(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    Err(err_wrong_arity(&text(&args[0]).to_ascii_lowercase()))
}

/// CLIENT SETNAME name.
pub(crate) fn client_setname(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientSetName(client_name(take(&mut args, 2))?))
}

/// CLIENT GETNAME.
pub(crate) fn client_getname(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientGetName)
}

/// CLIENT ID.
pub(crate) fn client_id(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientId)
}

/// CLIENT INFO.
pub(crate) fn client_info(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientInfo)
}

/// CLIENT LIST (without the TYPE / ID filters).
pub(crate) fn client_list(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    if args.len() > 2 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    conn(ConnCommand::ClientList)
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value.
pub(crate) fn client_setinfo(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let attr = match &args[2] {
        a if is(a, "lib-name") => ClientAttr::LibName,
        a if is(a, "lib-ver") => ClientAttr::LibVer,
        a => return Err(Reply::error(format!("ERR Unrecognized option '{}'", text(a)))),
    };
    let value = take(&mut args, 3);
    if !printable(&value) {
        let name = text(&args[2]);
        return Err(Reply::error(format!("ERR {name} cannot contain spaces, newlines or special characters.")));
    }
    conn(ConnCommand::ClientSetInfo { attr, value })
}

/// CLIENT NO-EVICT on|off.
pub(crate) fn client_no_evict(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientNoEvict(on_off(&args[2])?))
}

/// CLIENT NO-TOUCH on|off.
pub(crate) fn client_no_touch(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ClientNoTouch(on_off(&args[2])?))
}

/// CLIENT HELP.
pub(crate) fn client_help(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Help(&[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST",
        "    Return information about client connections.",
        "NO-EVICT (ON|OFF)",
        "    Accepted for compatibility; has no effect.",
        "NO-TOUCH (ON|OFF)",
        "    Accepted for compatibility; has no effect.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
    ]))
}

/// COMMAND (all commands' info).
pub(crate) fn command(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::CommandInfo(Vec::new()))
}

/// COMMAND COUNT.
pub(crate) fn command_count(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::CommandCount)
}

/// COMMAND LIST (without FILTERBY).
pub(crate) fn command_list(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    if args.len() > 2 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    conn(ConnCommand::CommandList)
}

/// COMMAND INFO [name ...].
pub(crate) fn command_info(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::CommandInfo(after_subcommand(args)))
}

/// COMMAND DOCS [name ...].
pub(crate) fn command_docs(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::CommandDocs(after_subcommand(args)))
}

/// COMMAND HELP.
pub(crate) fn command_help(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Help(&[
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands in this server.",
        "LIST",
        "    Return a list of all commands in this server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple commands.",
        "    If no command names are given, documentation details for all commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple commands.",
        "    If no command names are given, documentation details for all commands are returned.",
        "HELP",
        "    Print this help.",
    ]))
}

/// CONFIG GET parameter [parameter ...].
pub(crate) fn config_get(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ConfigGet(after_subcommand(args)))
}

/// DEBUG subcommand [argument ...]: the runtime checks `--enable-debug-command` before the subcommand, as Redis.
pub(crate) fn debug(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Debug(args[1..].to_vec()))
}

/// CONFIG SET parameter value [parameter value ...].
pub(crate) fn config_set(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ConfigSet)
}

/// CONFIG RESETSTAT.
pub(crate) fn config_resetstat(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ConfigResetStat)
}

/// CONFIG REWRITE.
pub(crate) fn config_rewrite(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::ConfigRewrite)
}

/// CONFIG HELP.
pub(crate) fn config_help(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    conn(ConnCommand::Help(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Refused: Shoal's configuration is read-only at runtime.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Refused: Shoal's configuration is read-only at runtime.",
        "HELP",
        "    Print this help.",
    ]))
}
