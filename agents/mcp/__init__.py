"""Tools from Model Context Protocol servers.

A catalog's `mcp_servers:` names the servers (a command run over stdio, or a Streamable HTTP
URL); a specialist lists their tools as `mcp:<server>/<tool>` or `mcp:<server>/*`. The
pure parts — catalog entries (`config`), names (`names`), schemas (`schema`), results
(`results`), status (`status`) — hold no connections; `transport`, `connection` and
`servers` run the servers, `tool` turns their tools into Baton tools.
"""
