-- A provider cancels an approved authorization it no longer needs (PAS certification type 3
-- on an approved request, or `POST /v1/authorizations/{number}/cancellation`): the day it
-- was cancelled. Drug given through that day stays covered (its claims come later); nothing
-- given after it is. NULL: not cancelled.
ALTER TABLE authorizations ADD COLUMN cancelled_on TEXT;
