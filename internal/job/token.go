package job

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Role is what an API token may do.
type Role string

// The roles. An admin does everything; a submitter enqueues to and reads its
// queues; an agent claims from its queues and reports on the jobs it holds.
const (
	RoleAdmin  Role = "admin"
	RoleSubmit Role = "submit"
	RoleAgent  Role = "agent"
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleSubmit, RoleAgent}

// ParseRole returns the Role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: role %q: want admin, submit or agent", ErrInvalid, s)
}

// Token is an API token as the server keeps it: never its secret, only the
// secret's SHA-256.
type Token struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"` // a note for people: who or what holds it
	Role Role   `json:"role"`
	// Queues scopes a submit or agent token to these queues; empty means
	// every queue.
	Queues []string `json:"queues,omitempty"`
	// Hash is the hex SHA-256 of the secret; it never leaves the server.
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Allows reports whether t may act on queue: its queues name it, or it has
// none.
func (t Token) Allows(queue string) bool {
	return len(t.Queues) == 0 || slices.Contains(t.Queues, queue)
}

// Validate checks a token before it is stored.
func (t Token) Validate() error {
	if !tokenID.MatchString(t.ID) {
		return fmt.Errorf("%w: token id %q: want t- and 16 hex digits", ErrInvalid, t.ID)
	}
	if _, err := ParseRole(string(t.Role)); err != nil {
		return err
	}
	if t.Role == RoleAdmin && len(t.Queues) > 0 {
		return fmt.Errorf("%w: queues: an admin token acts on every queue; scope submit or agent tokens", ErrInvalid)
	}
	for _, q := range t.Queues {
		if err := ValidateQueueName(q); err != nil {
			return err
		}
	}
	if len(t.Name) > 200 {
		return fmt.Errorf("%w: token name: %d bytes, want at most 200", ErrInvalid, len(t.Name))
	}
	if len(t.Hash) != sha256.Size*2 {
		return fmt.Errorf("%w: token hash: want %d hex digits", ErrInvalid, sha256.Size*2)
	}
	return nil
}

var tokenID = regexp.MustCompile(`^t-[0-9a-f]{16}$`)

// tokenPrefix starts every secret, so that a leaked one is easy to spot.
const tokenPrefix = "slw_"

// NewToken returns a token with a fresh ID and its secret: 32 random bytes,
// shown once to whoever asked for it, and kept by the server only as a hash.
// The secret reads slw_<id>_<random>: the server finds the token by its id
// and compares the hash of the rest in constant time.
func NewToken(role Role, queues []string, name string) (Token, string, error) {
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, "", fmt.Errorf("reading random bytes: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Token{}, "", fmt.Errorf("reading random bytes: %w", err)
	}
	t := Token{ID: "t-" + hex.EncodeToString(id[:]), Name: name, Role: role, Queues: queues}
	full := tokenPrefix + t.ID + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	t.Hash = HashToken(full)
	if err := t.Validate(); err != nil {
		return Token{}, "", err
	}
	return t, full, nil
}

// HashToken returns the hex SHA-256 of a token's secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenID returns the id a secret names; ErrUnauthorized when it is not
// shaped like a Slipway token.
func TokenID(secret string) (string, error) {
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	if !ok {
		return "", fmt.Errorf("%w: not a slipway token", ErrUnauthorized)
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || !tokenID.MatchString(id) {
		return "", fmt.Errorf("%w: not a slipway token", ErrUnauthorized)
	}
	return id, nil
}

// Matches reports, in constant time, whether secret is t's.
func (t Token) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(secret)), []byte(t.Hash)) == 1
}
