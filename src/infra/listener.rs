//! The infra server's socket: one address, or every interface of both IP
//! families, as Go's `net.Listen("tcp", ":port")` listens.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// The queue of connections not yet accepted (actix-web's default).
const BACKLOG: i32 = 2048;

/// A listener on `addr`. `[::]` (IPv6 unspecified) stands for every
/// interface: one socket that takes IPv4 too (`IPV6_V6ONLY` off, as Go
/// sets it), or `0.0.0.0` when the host has no IPv6.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let every_interface = matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unspecified());
    if !every_interface {
        return bind(addr, false);
    }
    match bind(addr, true) {
        Ok(listener) => Ok(listener),
        Err(e) if no_ipv6(&e) => {
            log::debug!("no IPv6 on this host ({e}): the infra server listens on IPv4 only");
            bind(
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()),
                false,
            )
        }
        Err(e) => Err(e),
    }
}

/// Whether `e` may say that the host has no usable IPv6 (the family is
/// missing or disabled: `EAFNOSUPPORT`, `EADDRNOTAVAIL`…) rather than that
/// the port is taken or forbidden, which IPv4 would not change.
fn no_ipv6(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind(addr: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // As actix-web and Go do: a restarted module can bind its port while
    // the last run's connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_bound_as_given() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0);
        // The port is taken: a second bind is refused, not moved elsewhere.
        let again = listen(addr).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse, "{again}");
    }
}
