package routine

import (
	"fmt"
	"regexp"
)

// StateAction reads or writes one key of the routine's own persistent
// key/value store, whose namespace is the routine name. Exactly one of Get,
// Put and Delete names the key; Value and TTL go with Put.
type StateAction struct {
	Get    string   `yaml:"get,omitempty" json:"get,omitempty" jsonschema:"oneof_required=get,description=Key to read; outputs value (empty when missing) and found (true/false)."`
	Put    string   `yaml:"put,omitempty" json:"put,omitempty" jsonschema:"oneof_required=put,description=Key to write value to; outputs value and found (whether the key existed before)."`
	Value  string   `yaml:"value,omitempty" json:"value,omitempty" jsonschema:"description=The value put stores: a string of up to 64 KiB."`
	TTL    Duration `yaml:"ttl,omitempty" json:"ttl,omitempty" jsonschema:"description=How long a put value lives; afterwards the key reads as missing (default: forever)."`
	Delete string   `yaml:"delete,omitempty" json:"delete,omitempty" jsonschema:"oneof_required=delete,description=Key to remove; outputs found (whether the key existed)."`
}

// The operations of a state step, as Op returns them.
const (
	StateOpGet    = "get"
	StateOpPut    = "put"
	StateOpDelete = "delete"
)

// Op returns the operation of the action and its key: the first of get,
// put and delete that is not empty, or "" when all are.
func (s *StateAction) Op() (op, key string) {
	switch {
	case s.Get != "":
		return StateOpGet, s.Get
	case s.Put != "":
		return StateOpPut, s.Put
	case s.Delete != "":
		return StateOpDelete, s.Delete
	}
	return "", ""
}

// Limits of the state store.
const (
	MaxStateKeyLen     = 200
	MaxStateValueBytes = 64 << 10
)

var stateKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)

// CheckStateKey returns what is wrong with a key of the state store, or nil.
func CheckStateKey(key string) error {
	if len(key) < 1 || len(key) > MaxStateKeyLen || !stateKeyPattern.MatchString(key) {
		return fmt.Errorf("state key %q must be 1 to %d letters, digits and _ . : / -", key, MaxStateKeyLen)
	}
	return nil
}

// CheckStateValue returns an error for a value too large for the state store.
func CheckStateValue(value string) error {
	if len(value) > MaxStateValueBytes {
		return fmt.Errorf("state value of %d bytes is more than the %d KiB a value may hold", len(value), MaxStateValueBytes>>10)
	}
	return nil
}
