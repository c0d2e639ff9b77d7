package secrets_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/secrets"
)

// BenchmarkRedactLine redacts a 100-byte line of prose, holding no secret,
// with 10 secrets to hide, against copying the line (the floor).
func BenchmarkRedactLine(b *testing.B) {
	var values []string
	for i := range 10 {
		values = append(values, fmt.Sprintf("value-of-secret-%d-0123456789abcdef", i))
	}
	r := secrets.NewRedactor(values)
	line := strings.Repeat("the quick brown fox jumps over the lazy dog ", 3)[:100]
	b.Run("redact", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			sink = r.Redact(line)
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			sink = strings.Clone(line)
		}
	})
}

var sink string

// BenchmarkNewRedactor builds the redactor of a run with 10 secrets, which
// every run start with secrets pays.
func BenchmarkNewRedactor(b *testing.B) {
	var values []string
	for i := range 10 {
		values = append(values, fmt.Sprintf("value-of-secret-%d-0123456789abcdef", i))
	}
	for b.Loop() {
		secrets.NewRedactor(values)
	}
}
