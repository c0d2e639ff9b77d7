package owner

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOwnerLiveness(t *testing.T) {
	t.Parallel()
	dir := Dir(filepath.Join(t.TempDir(), "owners"))
	a, err := Acquire(string(dir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(string(dir))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Fatalf("two owners of one process share the id %s", a.ID())
	}
	if dir.Dead(a.ID()) {
		t.Fatalf("owner %s is held, yet found dead", a.ID())
	}
	// A lock file nobody holds is a dead owner's (the kernel dropped the
	// lock of a killed process as it drops this closed one).
	dead := filepath.Join(string(dir), fileName("host:1:dead"))
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !dir.Dead("host:1:dead") {
		t.Fatal("an unlocked owner file is not found dead")
	}
	dir.Forget("host:1:dead")
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("Forget left %s: %v", dead, err)
	}
	for _, id := range []string{"host:1:dead", "elsewhere:7:x", "", "../" + a.ID()} {
		if dir.Dead(id) {
			t.Errorf("owner %q without a lock file here is found dead", id)
		}
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if dir.Dead(a.ID()) {
		t.Error("a released owner has no file and is not known dead")
	}
	if dir.Dead(b.ID()) {
		t.Error("releasing one owner freed another")
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "daemon.lock")
	release, held, err := TryLock(path)
	if err != nil || held {
		t.Fatalf("first TryLock: held %v, %v", held, err)
	}
	// Another open file of the same path, as another process has.
	if again, held, err := TryLock(path); err != nil || !held || again != nil {
		t.Fatalf("TryLock of a held lock: held %v, %v", held, err)
	}
	release()
	release, held, err = TryLock(path)
	if err != nil || held {
		t.Fatalf("TryLock after release: held %v, %v", held, err)
	}
	release()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the lock file went: %v", err)
	}
	if _, _, err := TryLock(filepath.Join(path, "sub")); err == nil {
		t.Fatal("TryLock under a file: no error")
	}
}
