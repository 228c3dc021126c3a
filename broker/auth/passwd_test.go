package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// cheapHash is a bcrypt hash of "secret" at cost 4, for fast tests.
const cheapHash = "$2a$04$rRk4xTXapmZYCXStIMhmdOR0zv3nxxwW6vqxkAAwNyIAcTiqBRaEC"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPasswordFile(t *testing.T) {
	h2y := "$2y$" + cheapHash[4:]
	h2b := "$2b$" + cheapHash[4:]
	p := writeFile(t, "passwd", "\ufeff# users\n\nalice:"+cheapHash+"\r\n  bob:"+h2y+"\ncarol:"+h2b)
	u, err := LoadPasswordFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 3 {
		t.Fatalf("Len = %d, want 3", u.Len())
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		if !u.Check(name, "secret") {
			t.Errorf("Check(%s, secret) = false", name)
		}
		if u.Check(name, "Secret") {
			t.Errorf("Check(%s, Secret) = true", name)
		}
	}
	if u.Check("dave", "secret") {
		t.Error("unknown user accepted")
	}
	if !u.Has("alice") || u.Has("dave") {
		t.Error("Has wrong")
	}
}

func TestLoadPasswordFileRefusals(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"mosquitto7", "# x\nalice:$7$101$abc$def\n", "line 2: user \"alice\": Mosquitto PBKDF2-SHA512 ($7$)"},
		{"mosquitto6", "alice:$6$abc$def\n", "line 1: user \"alice\": Mosquitto SHA-512 ($6$)"},
		{"plain", "alice:secret\n", "line 1: user \"alice\": not a bcrypt hash"},
		{"nocolon", "alice\n", "line 1: not user:hash"},
		{"badcost", "alice:$2a$99$rRk4xTXapmZYCXStIMhmdOR0zv3nxxwW6vqxkAAwNyIAcTiqBRaEC\n", "line 1: user \"alice\": malformed bcrypt hash"},
		{"short", "alice:$2a$04$rRk4xTX\n", "malformed bcrypt hash"},
		{"dup", "alice:" + cheapHash + "\nalice:" + cheapHash + "\n", "line 2: user \"alice\" listed twice"},
		{"emptyuser", ":" + cheapHash + "\n", "line 1: empty user name"},
		{"longline", "alice:" + strings.Repeat("x", MaxPasswordLineLen) + "\n", "line 1: 4102 bytes, limit 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, "passwd", c.content)
			_, err := LoadPasswordFile(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, p, c.want)
			}
		})
	}
}

func TestLoadPasswordFileTooBig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: the size is checked before anything is read.
	if err := f.Truncate(MaxPasswordFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := LoadPasswordFile(p); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err = %v, want a size refusal", err)
	}
	if _, err := LoadPasswordFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestCheckLongPassword(t *testing.T) {
	long := strings.Repeat("a", 73)
	h, err := bcrypt.GenerateFromPassword([]byte(long[:72]), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u := &Users{hashes: map[string][]byte{"alice": h}, dummy: dummyHash}
	if !u.Check("alice", long[:72]) {
		t.Fatal("72-byte password refused")
	}
	// bcrypt would ignore byte 73: refuse rather than truncate.
	if u.Check("alice", long) {
		t.Fatal("73-byte password accepted")
	}
}

func TestDummyHashIsValid(t *testing.T) {
	// An invalid dummy would fail fast and reveal unknown users by timing.
	c, err := bcrypt.Cost(dummyHash)
	if err != nil || c != DefaultBcryptCost {
		t.Fatalf("dummy hash cost %d, %v", c, err)
	}
	if err := bcrypt.CompareHashAndPassword(dummyHash, []byte("x")); err != bcrypt.ErrMismatchedHashAndPassword {
		t.Fatalf("dummy compare: %v, want a mismatch", err)
	}
}

func TestSetAndDeletePassword(t *testing.T) {
	p := writeFile(t, "passwd", "# keep me\nold:$7$101$abc$def\n\nbob:"+cheapHash+"\n")
	// A Mosquitto line makes the file refuse to load...
	if _, err := LoadPasswordFile(p); err == nil {
		t.Fatal("$7$ file loaded")
	}
	// ...and SetPassword replaces it.
	if err := setPassword(p, "old", "new password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := setPassword(p, "carol", "pw2", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	u, err := LoadPasswordFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Check("old", "new password") || !u.Check("bob", "secret") || !u.Check("carol", "pw2") || u.Len() != 3 {
		t.Fatalf("after SetPassword: len %d", u.Len())
	}
	data, _ := os.ReadFile(p)
	s := string(data)
	if !strings.HasPrefix(s, "# keep me\nold:$2a$04$") || !strings.Contains(s, "\n\nbob:"+cheapHash+"\ncarol:$2a$04$") {
		t.Fatalf("file not kept in order:\n%s", s)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := DeletePassword(p, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := DeletePassword(p, "bob"); err == nil || !strings.Contains(err.Error(), `"bob"`) {
		t.Fatalf("second delete: %v, want an error naming bob", err)
	}
	u, err = LoadPasswordFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if u.Has("bob") || u.Len() != 2 {
		t.Fatal("bob not deleted")
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("%d files in the directory, want 1", len(ents))
	}
}

func TestSetPasswordCreatesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new")
	if err := SetPassword(p, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	u, err := LoadPasswordFile(p)
	if err != nil || !u.Check("alice", "pw") {
		t.Fatalf("load: %v", err)
	}
	if c, _ := bcrypt.Cost(u.hashes["alice"]); c != DefaultBcryptCost {
		t.Fatalf("cost %d, want %d", c, DefaultBcryptCost)
	}
	if err := DeletePassword(filepath.Join(t.TempDir(), "missing"), "alice"); err == nil {
		t.Fatal("delete from a missing file succeeded")
	}
}

func TestSetPasswordRefusals(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	for _, c := range []struct{ user, pw, want string }{
		{"", "pw", "empty user name"},
		{"a:b", "pw", "contains ':'"},
		{"a\nb", "pw", "control character"},
		{"a\x7fb", "pw", "control character"},
		{"#a", "pw", "begins with '#'"},
		{" a", "pw", "space"},
		{strings.Repeat("u", MaxUserNameLen+1), "pw", "limit 256"},
		{"\xff", "pw", "UTF-8"},
		{"alice", "", "empty password"},
		{"alice", strings.Repeat("p", 73), "at most 72"},
	} {
		err := SetPassword(p, c.user, c.pw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetPassword(%q, %d bytes) = %v, want %q", c.user, len(c.pw), err, c.want)
		}
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("a refused SetPassword created the file")
	}
	if err := setPassword(p, strings.Repeat("u", MaxUserNameLen), "pw", bcrypt.MinCost); err != nil {
		t.Fatalf("256-byte name: %v", err)
	}
}
