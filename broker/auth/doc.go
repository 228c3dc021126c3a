// Package auth is Duplex's user store and access control: the password file
// (bcrypt), JWT verification, TLS client-certificate identities, ACL rules
// (in the config or a Mosquitto-style acl_file) and the per-source failure
// tracker that delays and bans brute-force attempts. Its Service implements
// broker.Authenticator and broker.Authorizer and is reloaded on SIGHUP.
package auth
