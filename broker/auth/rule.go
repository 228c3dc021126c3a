package auth

// Access is what a rule grants.
type Access uint8

// Rule accesses.
const (
	Allow Access = iota
	Deny
)

// Action is what a rule is about.
type Action uint8

// Rule actions. ActionAll covers both.
const (
	ActionPublish Action = 1 << iota
	ActionSubscribe
	ActionAll = ActionPublish | ActionSubscribe
)

// Rule is one ACL entry. Exactly one of Topic and Queue is set: Topic is an
// MQTT-style pattern (+, #) and Queue a queue-name pattern in the same
// syntax; both may hold %u (user name) and %c (client id). Who it applies
// to: User, or Group, or Anonymous clients, or (all empty) everyone.
type Rule struct {
	User      string
	Group     string
	Anonymous bool
	Access    Access
	Action    Action
	Topic     string
	Queue     string
}
