// Package auth is Duplex's user store and access control: the password file
// (bcrypt), JWT verification, TLS client-certificate identities, ACL rules
// (in the config or a Mosquitto-style acl_file) and the per-source failure
// tracker that delays and bans brute-force attempts. Its Service implements
// broker.Authenticator and broker.Authorizer and is reloaded on SIGHUP.
//
// Files:
//
//   - passwd.go: the password file (`user:bcrypt-hash` lines), LoadPasswordFile,
//     Users.Check, and SetPassword / DeletePassword for `duplex passwd`.
//   - rule.go, acl.go, aclmatch.go, aclfile.go: Rule, the compiled ACL
//     (NewACL; ACL.Allow in aclmatch.go) and ParseACLFile for Mosquitto's
//     acl_file syntax.
//   - jwt.go, jwk.go, jwtclaims.go: JWTVerifier (HS/RS/ES keys, JWKS) and
//     the claims, the acl claim included.
//   - ban.go: BanTracker (growing delay, ban after repeated failures) and
//     LogLimiter (one log line per source per interval).
//   - service.go, authenticate.go: Service, which ties them together behind
//     one immutable state swapped atomically by Reload; Authenticate.
//
// Checks on the publish path never take a lock and never allocate: the
// router asks Allow once per subscription and per publish topic, caches
// the answer, and drops the cache when Service.Generation changes.
package auth
