package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Limits on the forwarding headers: only the right-most maxForwardHops
// entries, each at most maxForwardEntry bytes, are looked at, however long
// the header (net/http already bounds it with MaxHeaderBytes).
const (
	maxForwardHops  = 32
	maxForwardEntry = 64
)

// ParseTrustedProxies parses trusted_proxies: CIDR prefixes ("10.0.0.0/8")
// or bare addresses ("192.0.2.1", a /32 or /128).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR prefix or IP address: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR prefix or IP address: %w", s, err)
		}
		ip = ip.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// trusted reports whether ip is one of the trusted proxies.
func (s *Server) trusted(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr is the client's address for r: the TCP peer, or, when the
// peer is a trusted proxy, the right-most address in X-Forwarded-For (or,
// without it, RFC 7239 Forwarded for=) that is not itself a trusted proxy.
// Headers from an untrusted peer are never read. X-Forwarded-For wins when
// both are present: a proxy that only sets Forwarded must drop a
// client-sent X-Forwarded-For.
func (s *Server) clientAddr(r *http.Request) netip.AddrPort {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(peer.Addr()) {
		return peer
	}
	var vals []string
	var parse func(string) (netip.AddrPort, bool)
	if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
		vals, parse = v, parseForwardedAddr
	} else if v := r.Header.Values("Forwarded"); len(v) > 0 {
		vals, parse = v, parseForwardedFor
	} else {
		return peer
	}
	client := peer
	hops := 0
	// Right to left over the header lines and their comma-separated
	// entries: the right-most entry is the one our proxy added.
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			if hops == maxForwardHops {
				return client
			}
			hops++
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			a, ok := parse(strings.TrimSpace(entry))
			if !ok {
				return client // garbage (or "unknown"): the last good hop
			}
			client = a
			if !s.trusted(a.Addr()) {
				return client
			}
		}
	}
	return client
}

// parseForwardedAddr parses one X-Forwarded-For entry: an address, with
// or without a port ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80").
func parseForwardedAddr(e string) (netip.AddrPort, bool) {
	if e == "" || len(e) > maxForwardEntry {
		return netip.AddrPort{}, false
	}
	if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
		return netip.AddrPortFrom(ip.Unmap().WithZone(""), 0), true
	}
	ap, err := netip.ParseAddrPort(e)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), true
}

// parseForwardedFor parses the for= parameter of one RFC 7239 Forwarded
// element ("for=192.0.2.60;proto=http", `for="[2001:db8:cafe::17]:4711"`).
// Obfuscated identifiers and "unknown" do not parse.
func parseForwardedFor(e string) (netip.AddrPort, bool) {
	for e != "" {
		var pair string
		pair, e, _ = strings.Cut(e, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(k, "for") {
			continue
		}
		return parseForwardedAddr(strings.Trim(v, `"`))
	}
	return netip.AddrPort{}, false
}

// tcpAddr is ap as a net.Addr for Transport.RemoteAddr.
func tcpAddr(ap netip.AddrPort) net.Addr { return net.TCPAddrFromAddrPort(ap) }
