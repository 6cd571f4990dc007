"""Alerts: the record (:mod:`.model`), the non-blocking sink with its disk spool
(:mod:`.sink`, :mod:`.spool`), the Redis Streams writer (:mod:`.redis_stream`) and
consumer-group readers (:mod:`.subscriber`). Import the submodules you need; this
package imports nothing heavy.
"""
