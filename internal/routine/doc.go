// Package routine holds the leaf domain types of Routines: the routine file
// as parsed (Routine, Step, Trigger), a run and its steps as recorded
// (Run, StepRun, LogLine), their states, the standard error payload and the
// sentinel errors. It imports nothing of ours, so every other package may
// import it.
package routine
