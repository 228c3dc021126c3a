package broker

import "context"

// Credentials is what a client presents when it connects.
type Credentials struct {
	Login, Passcode string
	ClientID        string // MQTT client identifier or STOMP client-id header
	RemoteAddr      string
	Protocol        string // "stomp" or "mqtt"
}

// Identity is an authenticated principal.
type Identity struct {
	Name string
}

// Authenticator decides who may connect. A non-nil error refuses the
// connection; protocols report it as a login failure without detail.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

// Op is an operation checked by an Authorizer.
type Op uint8

// Operations an Authorizer is asked about.
const (
	OpPublish Op = iota
	OpSubscribe
)

// Authorizer decides what an identity may do on a topic or queue.
type Authorizer interface {
	Allow(id Identity, op Op, dest string) bool
}

// AllowAll lets everyone connect and do everything. It is the default.
type AllowAll struct{}

// Authenticate accepts any credentials; the identity is the login.
func (AllowAll) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	return Identity{Name: c.Login}, nil
}

// Allow permits every operation.
func (AllowAll) Allow(Identity, Op, string) bool { return true }
