"""Chat: a rep talks to the agent, on the rep's own CRM connection.

``services`` holds the state changes (start a session, post a message), ``loop`` the agent
loop over the model's tool calls, ``tools`` the agent's tools (find, read, propose; each
through the guard), ``memory`` the session state and compaction, ``selectors`` the reads.
"""
