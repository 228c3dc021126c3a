package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Password file limits and defaults.
const (
	// DefaultBcryptCost is the bcrypt cost SetPassword uses (bcrypt's own
	// default: about 50 ms per check on a current core).
	DefaultBcryptCost = 10
	// MaxPasswordFileSize bounds the password file; a bigger one is
	// refused before it is read.
	MaxPasswordFileSize = 16 << 20
	// MaxPasswordLineLen bounds one line of the password file.
	MaxPasswordLineLen = 4 << 10
	// MaxUserNameLen bounds a user name in bytes.
	MaxUserNameLen = 256
	// MaxPasswordLen is bcrypt's limit: it reads only the first 72 bytes,
	// so a longer password is refused rather than silently truncated.
	MaxPasswordLen = 72
)

// dummyHash is checked against for unknown users, so that an unknown user
// costs as much as a wrong password and timing does not reveal which users
// exist. Cost DefaultBcryptCost; the password is irrelevant.
var dummyHash = []byte("$2a$10$kQNvnQWmnH.OIJ0GwOos9uYKywiI4mivSeV5sxAGDa7okx9oV6rfW")

var utf8BOM = []byte("\ufeff")

// Users is a loaded password file: user name to bcrypt hash. It is
// immutable once loaded and safe for concurrent use.
type Users struct {
	hashes map[string][]byte
	dummy  []byte // bcrypt hash at the file's cost, for unknown users
}

// LoadPasswordFile reads a password file: one `user:hash` per line, bcrypt
// hashes ($2a$, $2b$, $2y$), `#` comments and blank lines. Mosquitto's
// PBKDF2 ($7$) and SHA-512 ($6$) hashes are refused with the line named:
// re-create those users with `duplex passwd`. A file over
// MaxPasswordFileSize, a line over MaxPasswordLineLen, a malformed line or a
// user listed twice is an error naming the file and line.
func LoadPasswordFile(path string) (*Users, error) {
	data, err := readBounded(path, MaxPasswordFileSize)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, utf8BOM) // some editors write one
	u := &Users{hashes: make(map[string][]byte)}
	cost := 0
	for n, line := range lines(data) {
		if len(line) > MaxPasswordLineLen {
			return nil, fmt.Errorf("password file %s line %d: %d bytes, limit %d", path, n, len(line), MaxPasswordLineLen)
		}
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("password file %s line %d: not user:hash", path, n)
		}
		if err := ValidUserName(user); err != nil {
			return nil, fmt.Errorf("password file %s line %d: %w", path, n, err)
		}
		if _, dup := u.hashes[user]; dup {
			return nil, fmt.Errorf("password file %s line %d: user %q listed twice", path, n, user)
		}
		c, err := checkHash(hash)
		if err != nil {
			return nil, fmt.Errorf("password file %s line %d: user %q: %w", path, n, user, err)
		}
		if cost == 0 {
			cost = c
		}
		u.hashes[user] = []byte(hash)
	}
	u.dummy = dummyHash
	if cost != 0 && cost != DefaultBcryptCost {
		// Unknown users must cost what known ones do.
		if h, err := bcrypt.GenerateFromPassword([]byte("duplex-dummy"), cost); err == nil {
			u.dummy = h
		}
	}
	return u, nil
}

// checkHash returns the cost of a bcrypt hash, or an error saying what the
// hash is instead.
func checkHash(hash string) (int, error) {
	switch {
	case strings.HasPrefix(hash, "$7$"):
		return 0, errors.New("Mosquitto PBKDF2-SHA512 ($7$) hash: Duplex uses bcrypt; re-create the user with `duplex passwd FILE USER`")
	case strings.HasPrefix(hash, "$6$"):
		return 0, errors.New("Mosquitto SHA-512 ($6$) hash: Duplex uses bcrypt; re-create the user with `duplex passwd FILE USER`")
	case !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$"):
		return 0, errors.New("not a bcrypt hash ($2a$, $2b$ or $2y$); create it with `duplex passwd FILE USER`")
	}
	c, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return 0, fmt.Errorf("malformed bcrypt hash: %v", err)
	}
	if len(hash) != 60 {
		return 0, fmt.Errorf("malformed bcrypt hash: %d characters, want 60", len(hash))
	}
	return c, nil
}

// Check reports whether password is user's password. An unknown user costs
// the same bcrypt run as a known one, so timing does not reveal who exists.
// A password longer than MaxPasswordLen bytes never matches (bcrypt would
// ignore the bytes past 72).
func (u *Users) Check(user, password string) bool {
	if u == nil || len(password) > MaxPasswordLen {
		return false
	}
	hash, ok := u.hashes[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// Has reports whether user is in the file.
func (u *Users) Has(user string) bool {
	if u == nil {
		return false
	}
	_, ok := u.hashes[user]
	return ok
}

// Len is the number of users.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.hashes)
}

// ValidUserName checks a user name for the password file: 1 to
// MaxUserNameLen bytes of UTF-8, no ':' (the field separator), no control
// characters, no leading or trailing space and no leading '#' (the file
// would read it as a comment or trim it).
func ValidUserName(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case len(user) > MaxUserNameLen:
		return fmt.Errorf("user name of %d bytes, limit %d", len(user), MaxUserNameLen)
	case !utf8.ValidString(user):
		return errors.New("user name is not valid UTF-8")
	case strings.IndexByte(user, ':') >= 0:
		return fmt.Errorf("user name %q contains ':'", user)
	case user[0] == '#':
		return fmt.Errorf("user name %q begins with '#'", user)
	case strings.TrimSpace(user) != user:
		return fmt.Errorf("user name %q begins or ends with a space", user)
	}
	for _, r := range user {
		if unicode.IsControl(r) {
			return fmt.Errorf("user name %q contains a control character", user)
		}
	}
	return nil
}

// SetPassword creates user in the password file at path, or changes its
// password, with a bcrypt hash of cost DefaultBcryptCost. The file is
// created if missing; other lines, comments included, are kept as they are
// (a line with a hash Duplex refuses can be replaced this way). The write is
// atomic (temporary file, then rename) and the file's mode is 0600.
func SetPassword(path, user, password string) error {
	return setPassword(path, user, password, DefaultBcryptCost)
}

func setPassword(path, user, password string, cost int) error {
	if err := ValidUserName(user); err != nil {
		return err
	}
	switch {
	case password == "":
		return errors.New("empty password")
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password of %d bytes: bcrypt uses at most %d", len(password), MaxPasswordLen)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return err
	}
	data, err := readBounded(path, MaxPasswordFileSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	entry := user + ":" + string(hash)
	out, found := rewrite(data, user, entry)
	if !found {
		out = append(out, entry...)
		out = append(out, '\n')
	}
	return writeAtomic(path, out)
}

// DeletePassword removes user from the password file at path, keeping the
// other lines. It is an error naming the user if the user is not there.
func DeletePassword(path, user string) error {
	data, err := readBounded(path, MaxPasswordFileSize)
	if err != nil {
		return err
	}
	out, found := rewrite(data, user, "")
	if !found {
		return fmt.Errorf("user %q is not in password file %s", user, path)
	}
	return writeAtomic(path, out)
}

// rewrite returns data with the lines of user replaced by entry (the first
// one; later ones dropped) or removed when entry is "".
func rewrite(data []byte, user, entry string) ([]byte, bool) {
	data = bytes.TrimPrefix(data, utf8BOM)
	out := make([]byte, 0, len(data)+len(entry)+1)
	found := false
	for _, line := range lines(data) {
		s := strings.TrimSpace(string(line))
		if name, _, ok := strings.Cut(s, ":"); ok && name == user && s[0] != '#' {
			if !found && entry != "" {
				out = append(out, entry...)
				out = append(out, '\n')
			}
			found = true
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out, found
}

// lines yields the lines of data (without "\n" or "\r\n") numbered from 1.
func lines(data []byte) func(func(int, []byte) bool) {
	return func(yield func(int, []byte) bool) {
		for n := 1; len(data) > 0; n++ {
			line, rest, _ := bytes.Cut(data, []byte{'\n'})
			data = rest
			if !yield(n, bytes.TrimSuffix(line, []byte{'\r'})) {
				return
			}
		}
	}
}

// readBounded reads the file at path, refusing one bigger than limit bytes
// before reading it.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d", path, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return data, nil
}

// writeAtomic replaces the file at path (following a symbolic link) with
// data, mode 0600 and the old file's owner when possible, through a
// temporary file in the same directory and a rename, so a reader sees the
// old file or the new one, never a part.
func writeAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	keepOwner(tmp, path)
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return nil
}
