"""Several instances and several Asterisk servers on one PostgreSQL (SPEC §8a, issue 18).

``lease``: exactly one instance holds each Asterisk's ARI connection. ``live``: live legs
written behind to the database so that any instance lists any call. ``routing``: an action on a
call goes to the instance that holds its Asterisk (LISTEN/NOTIFY with a reply).
"""
