package broker

import (
	"context"
	"time"
)

// Credentials is what a client presents when it connects, with what the
// listener knows about the connection.
type Credentials struct {
	Login, Passcode string
	ClientID        string // MQTT client identifier or STOMP client-id header
	// RemoteAddr is the client's address (host:port); behind a configured
	// trusted proxy, the address the proxy reported (X-Forwarded-For,
	// Forwarded).
	RemoteAddr string
	Protocol   string // "stomp" or "mqtt"
	// Transport is "ws", "wss", "tcp" or "tls".
	Transport string
	// CertNames are the names of a verified TLS client certificate: its
	// Subject Common Name first, then its DNS, e-mail and URI SANs. Empty
	// without a verified certificate.
	CertNames []string
	// Token is the access_token query parameter of the WebSocket URL
	// (browsers cannot set headers); "" when absent.
	Token string
}

// Identity is an authenticated principal. The zero value is an anonymous
// client.
type Identity struct {
	Name      string   // user name; "" when anonymous
	Groups    []string // groups the user belongs to (ACL rules may name them)
	Admin     bool     // may use the management API and read $SYS
	Anonymous bool     // connected without credentials (allow_anonymous)
	// Expires is when the credential stops being valid (a JWT's exp); the
	// protocol closes the connection then. Zero: never.
	Expires time.Time
	// Rules carries permissions that came with the credential (a JWT's acl
	// claim); only the Authorizer that issued them reads them.
	Rules any
}

// Authenticator decides who may connect. A non-nil error refuses the
// connection: ErrBadCredentials (wrong password, unknown user, bad token),
// ErrNotAuthorized (known but not allowed, anonymous refused), ErrBanned
// (the source failed too often), or another error (internal failure).
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

// Op is an operation checked by an Authorizer.
type Op uint8

// Operations an Authorizer is asked about. Topics and queues are separate
// namespaces: MQTT topic "orders" and STOMP /queue/orders are different
// destinations.
const (
	OpPublish      Op = iota // publish to a topic (dest: topic name)
	OpSubscribe              // subscribe to a topic filter (dest: filter, may hold + and #)
	OpQueueSend              // send to a point-to-point queue (dest: queue name)
	OpQueueReceive           // consume from a queue (dest: queue name)
)

func (op Op) String() string {
	switch op {
	case OpPublish:
		return "publish"
	case OpSubscribe:
		return "subscribe"
	case OpQueueSend:
		return "queue-send"
	case OpQueueReceive:
		return "queue-receive"
	}
	return "unknown"
}

// Authorizer decides what an identity may do on a topic or queue. It is
// asked once per SUBSCRIBE and once per publish topic (the router caches
// the answer per session), never per delivery. clientID is the session's
// client identifier, for %c patterns.
type Authorizer interface {
	Allow(id Identity, clientID string, op Op, dest string) bool
}

// Generationer is implemented by an Authorizer whose rules can change
// (reload on SIGHUP): the generation changes with every new rule set, and
// the router drops cached answers when it does.
type Generationer interface {
	Generation() uint64
}

// AllowAll lets everyone connect and do everything. It is the default.
type AllowAll struct{}

// Authenticate accepts any credentials; the identity is the login.
func (AllowAll) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	return Identity{Name: c.Login, Anonymous: c.Login == ""}, nil
}

// Allow permits every operation.
func (AllowAll) Allow(Identity, string, Op, string) bool { return true }
