package secrets

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// MasterKeyEnv is the environment variable that holds the master key, an
// age secret key (AGE-SECRET-KEY-1…), when it is not in the key file.
const MasterKeyEnv = "ROUTINES_MASTER_KEY"

// MasterKeyFileEnv overrides where the master key file is.
const MasterKeyFileEnv = "ROUTINES_MASTER_KEY_FILE"

// KeySource says where the master key of the builtin vault comes from: the
// value of ROUTINES_MASTER_KEY when set, else the key file.
type KeySource struct {
	Env  string // the value of ROUTINES_MASTER_KEY; "" when unset
	File string // the key file, used when Env is ""
}

// KeySourceFromEnv returns the key source of this process: the
// environment variable, else $ROUTINES_MASTER_KEY_FILE, else
// routines/master.key in the user's configuration directory
// (~/.config/routines/master.key).
func KeySourceFromEnv(getenv func(string) string) (KeySource, error) {
	src := KeySource{Env: getenv(MasterKeyEnv), File: getenv(MasterKeyFileEnv)}
	if src.File == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return src, fmt.Errorf("master key: no configuration directory (%w): set %s or %s", err, MasterKeyEnv, MasterKeyFileEnv)
		}
		src.File = filepath.Join(dir, "routines", "master.key")
	}
	return src, nil
}

// String names the source in messages, never with the key.
func (s KeySource) String() string {
	if s.Env != "" {
		return MasterKeyEnv
	}
	return "the key file " + s.File
}

// masterKey encrypts and decrypts the values of the builtin vault.
type masterKey struct {
	id     *age.X25519Identity
	source KeySource
}

// ErrNoMasterKey is wrapped by the error of loading a master key that does
// not exist yet.
var ErrNoMasterKey = errors.New("no master key")

// loadMasterKey reads the master key. When create is set and the key file
// does not exist, it makes a new key there (mode 0600, its directory 0700).
// A key file that others may read is refused.
func loadMasterKey(src KeySource, create bool) (*masterKey, error) {
	if src.Env != "" {
		id, err := age.ParseX25519Identity(strings.TrimSpace(src.Env))
		if err != nil {
			return nil, fmt.Errorf("%s is not an age secret key (AGE-SECRET-KEY-1…): make one with age-keygen, or unset it to use %s", MasterKeyEnv, src.File)
		}
		return &masterKey{id: id, source: src}, nil
	}
	f, err := os.Open(src.File)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%w: %s does not exist and %s is not set (`routines secrets set` creates the key file)", ErrNoMasterKey, src.File, MasterKeyEnv)
		}
		return createMasterKey(src)
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	// Windows keeps no mode bits (Go reports 0666): there the folder's
	// access list, which the key file inherits, guards it
	// (docs/platforms.md).
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("master key file %s may be read by others (mode %04o): run chmod 600 %s", src.File, perm, src.File)
	}
	id, err := parseKeyFile(f)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", src.File, err)
	}
	return &masterKey{id: id, source: src}, nil
}

// parseKeyFile reads the first age secret key of a key file; lines
// starting with # are comments.
func parseKeyFile(r io.Reader) (*age.X25519Identity, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, errors.New("it does not hold an age secret key (AGE-SECRET-KEY-1…)")
		}
		return id, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("it is empty")
}

func createMasterKey(src KeySource) (*masterKey, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("make master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(src.File), 0o700); err != nil {
		return nil, fmt.Errorf("make master key: %w", err)
	}
	f, err := os.OpenFile(src.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // made by another process meanwhile
		return loadMasterKey(src, false)
	}
	if err != nil {
		return nil, fmt.Errorf("make master key: %w", err)
	}
	content := "# The master key of the secrets of Routines (age). Keep it; without it the\n" +
		"# stored secrets cannot be read. Public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(src.File)
		return nil, fmt.Errorf("make master key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(src.File)
		return nil, fmt.Errorf("make master key: %w", err)
	}
	return &masterKey{id: id, source: src}, nil
}

// wrap encrypts the vault's data key with age under the master key.
func (k *masterKey) wrap(dataKey []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.id.Recipient())
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(dataKey); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unwrap decrypts the vault's data key. Its errors say what went wrong
// without any of the key.
func (k *masterKey) unwrap(wrapped []byte) (*dataKey, error) {
	r, err := age.Decrypt(bytes.NewReader(wrapped), k.id)
	var noMatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &noMatch):
		return nil, fmt.Errorf("the vault was sealed under another master key than %s: use that key", k.source)
	case err != nil:
		return nil, errors.New("the vault's data key is damaged in the store")
	}
	raw, err := io.ReadAll(r)
	if err != nil || len(raw) != chacha20poly1305.KeySize {
		return nil, errors.New("the vault's data key is damaged in the store")
	}
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, err
	}
	return &dataKey{aead: aead}, nil
}

// dataKey seals the values of the builtin vault: XChaCha20-Poly1305 with a
// random nonce per value and the secret's name as associated data, so a
// ciphertext moved to another name does not open.
type dataKey struct {
	aead cipher.AEAD
}

// sealVersion starts every sealed value: the format, for later changes.
const sealVersion = 1

func associated(name string) []byte { return []byte("routines-secret\x00" + name) }

// seal encrypts the value of the secret name.
func (d *dataKey) seal(name, value string) ([]byte, error) {
	nonce := make([]byte, d.aead.NonceSize(), 1+d.aead.NonceSize()+len(value)+d.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, nonce...)
	return d.aead.Seal(out, nonce, []byte(value), associated(name)), nil
}

// open decrypts the stored value of the secret name.
func (d *dataKey) open(name string, sealed []byte) (string, error) {
	n := d.aead.NonceSize()
	if len(sealed) < 1+n+d.aead.Overhead() || sealed[0] != sealVersion {
		return "", errors.New("its stored ciphertext is damaged: set the secret again")
	}
	plain, err := d.aead.Open(nil, sealed[1:1+n], sealed[1+n:], associated(name))
	if err != nil {
		return "", errors.New("its stored ciphertext is damaged or belongs to another secret: set the secret again")
	}
	return string(plain), nil
}
