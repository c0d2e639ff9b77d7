package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
)

// TriggerAPI is the trigger kind of runs fired through the API.
const TriggerAPI = "api"

// createRun fires a routine with the JSON object of string inputs in the body.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.visibleRoutine(r, r.PathValue("name"))
	if !ok {
		s.rejected(TriggerAPI, nil, metrics.ReasonNotFound)
		writeError(w, http.StatusNotFound, fmt.Sprintf("no routine %q in this project", r.PathValue("name")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.rejected(TriggerAPI, rt, bodyReason(err))
		bodyError(w, err)
		return
	}
	input := map[string]string{}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &input); err != nil {
			s.rejected(TriggerAPI, rt, metrics.ReasonBadRequest)
			writeError(w, http.StatusBadRequest, "malformed input: "+err.Error()+` (want a JSON object of strings, such as {"name": "Ada"})`)
			return
		}
	}
	if err := rt.CheckInput(input); err != nil {
		s.rejected(TriggerAPI, rt, metrics.ReasonBadRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.enqueue(w, r, rt, routine.TriggerInfo{Kind: TriggerAPI}, input)
}

// bodyError answers a failed body read: 413 past the limit, else 400.
func bodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, "read body: "+err.Error())
}

// readJSON reads a JSON body of at most maxBody bytes into v, and answers
// the error itself (and returns false) when it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}
