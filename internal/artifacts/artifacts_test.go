package artifacts_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/artifacts"
)

// sumHello is the SHA-256 of "hello".
const sumHello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		size       int64
		sum        string
		bad        string // in the error, "" when it reads clean
	}{
		{"intact", "hello", 5, sumHello, ""},
		{"changed", "hellO", 5, sumHello, "sha256 "},
		{"short", "hell", 5, sumHello, "4 bytes where 5 were stored"},
		{"long", "hello!", 5, sumHello, "more than the 5 bytes stored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := artifacts.Verify(io.NopCloser(strings.NewReader(tc.body)), "build", "out/f.txt", tc.size, tc.sum)
			got, err := io.ReadAll(rc)
			if tc.bad == "" {
				if err != nil || string(got) != tc.body {
					t.Fatalf("read %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, artifacts.ErrChecksum) || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "build/out/f.txt") {
				t.Fatalf("error %v, want ErrChecksum naming build/out/f.txt and saying %q", err, tc.bad)
			}
			if _, again := rc.Read(make([]byte, 1)); again != err {
				t.Errorf("a read after the mismatch: %v, want the same error", again)
			}
		})
	}
}

func TestSumSeeksBack(t *testing.T) {
	t.Parallel()
	r := strings.NewReader("xxhello")
	r.Seek(2, io.SeekStart)
	sum, err := artifacts.Sum(r, 5)
	if err != nil || sum != sumHello {
		t.Fatalf("Sum = %s, %v", sum, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "hello" {
		t.Fatalf("after Sum the reader reads %q, want hello", rest)
	}
	if _, err := artifacts.Sum(strings.NewReader("hello"), 4); err == nil {
		t.Fatal("Sum of 5 bytes announced as 4: no error")
	}
}
