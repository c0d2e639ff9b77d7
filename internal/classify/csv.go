package classify

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadCSV reads labelled examples from CSV data: a header line naming the
// columns label and text (in either order; other columns are ignored),
// then one example per record. name prefixes the errors, which give the
// line of the record at fault.
func ReadCSV(name string, data []byte) ([]Example, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\uFEFF"))))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: the file is empty: write a header line label,text and then one example per line", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	labelCol, textCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "label":
			labelCol = i
		case "text":
			textCol = i
		}
	}
	if labelCol < 0 || textCol < 0 {
		return nil, fmt.Errorf("%s:1: the first line must be the header label,text (got %q)", name, strings.Join(header, ","))
	}
	var out []Example
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %v", name, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) <= max(labelCol, textCol) {
			return nil, fmt.Errorf("%s:%d: want the columns %s, got %d field(s)", name, line, strings.Join(header, ","), len(rec))
		}
		label, text := strings.TrimSpace(rec[labelCol]), strings.TrimSpace(rec[textCol])
		switch {
		case label == "":
			return nil, fmt.Errorf("%s:%d: the label is empty", name, line)
		case text == "":
			return nil, fmt.Errorf("%s:%d: the text of this %q example is empty", name, line, label)
		case len(Features(text)) == 0:
			return nil, fmt.Errorf("%s:%d: the text of this %q example has no word or number", name, line, label)
		}
		out = append(out, Example{Label: label, Text: text, Line: line})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples after the header", name)
	}
	return out, nil
}

// TrainCSV reads the CSV file at path and trains a model from it, whose
// Source is the file's hash.
func TrainCSV(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read training data: %w", err)
	}
	return trainData(path, data)
}

func trainData(path string, data []byte) (*Model, error) {
	examples, err := ReadCSV(path, data)
	if err != nil {
		return nil, err
	}
	m, err := Train(examples)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Source = hashOf(data)
	return m, nil
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// CachePath is where LoadOrTrain keeps the model of the CSV at path.
func CachePath(csvPath string) string { return csvPath + ".model.json" }

// LoadOrTrain returns the model of the CSV file at path: the cached one
// next to it (CachePath) when it was trained from the same bytes, else a
// model trained now and cached. trained says which.
func LoadOrTrain(path string) (m *Model, trained bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read training data: %w", err)
	}
	cache := CachePath(path)
	// A missing, damaged or stale cache is replaced by a model trained now.
	if cached, err := Load(cache); err == nil && cached.Source == hashOf(data) {
		return cached, false, nil
	}
	m, err = trainData(path, data)
	if err != nil {
		return nil, false, err
	}
	if err := m.Save(cache); err != nil {
		return nil, false, fmt.Errorf("cache the model of %s: %w", path, err)
	}
	return m, true, nil
}
