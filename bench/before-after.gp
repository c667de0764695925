# gnuplot script for bench/before-after.sh: three stacked panels, direct
# (client -> origin) against through Cachalot (client -> cachalot -> origin),
# per second of each phase. Called as
#   gnuplot -e "datafile='F'; outfile='F.png'; subtitle='...'; subtitle2='...'" bench/before-after.gp
# Columns of datafile (before_after_load.py report --dat):
#   1 second  2-4 direct p50 p95 p99 (ms)  5-7 cachalot p50 p95 p99 (ms)
#   8 direct origin req/s  9 cachalot origin req/s  10 cachalot hit rate (%)
if (!exists("datafile")) datafile = "before-after.dat"
if (!exists("outfile")) outfile = "before-after.png"
if (!exists("subtitle")) subtitle = ""
if (!exists("subtitle2")) subtitle2 = ""

set terminal pngcairo size 1200,1100 enhanced font "DejaVu Sans,11"
set output outfile
set datafile missing "NaN"
set grid ytics lc rgb "#dddddd"
set key outside right top vertical Left reverse samplen 2 width -2
set lmargin 12
set rmargin 30
set xlabel "seconds into the phase"
stats datafile using 1 nooutput
set xrange [0:STATS_max + 0.5]

direct = "#c0392b"
cached = "#1f6fb2"

set multiplot layout 3,1 title "Cachalot before/after: the same request mix, direct vs through Cachalot\n{/*0.75 ".subtitle."}\n{/*0.75 ".subtitle2."}" font ",13"

# 1. Latency percentiles per second (log scale: misses cost the origin's
#    latency, hits a fraction of a millisecond).
set title "Latency per second (percentiles of the requests due in that second)"
set ylabel "latency (ms, log scale)"
set logscale y
set format y "%g"
plot datafile using 1:4 with lines lw 1.5 dt 3 lc rgb direct title "direct p99", \
     datafile using 1:3 with lines lw 2 dt 2 lc rgb direct title "direct p95", \
     datafile using 1:2 with lines lw 2.5 lc rgb direct title "direct p50", \
     datafile using 1:7 with lines lw 1.5 dt 3 lc rgb cached title "Cachalot p99", \
     datafile using 1:6 with lines lw 2 dt 2 lc rgb cached title "Cachalot p95", \
     datafile using 1:5 with lines lw 2.5 lc rgb cached title "Cachalot p50"
unset logscale y

# 2. Hit rate per second, from Cachalot's cachalot_requests_total.
set title "Cache hit rate per second (hit + stale over all requests; direct has no cache)"
set ylabel "hit rate (%)"
set yrange [0:100]
plot datafile using 1:10 with lines lw 2.5 lc rgb cached title "Cachalot hit rate", \
     0 with lines lw 2 lc rgb direct title "direct (0%)"
set autoscale y

# 3. Origin requests per second, from the origin's own counter.
set title "Requests per second reaching the origin (the origin's own counter)"
set ylabel "origin req/s"
set yrange [0:*]
plot datafile using 1:8 with lines lw 2.5 lc rgb direct title "direct", \
     datafile using 1:9 with lines lw 2.5 lc rgb cached title "through Cachalot"

unset multiplot
