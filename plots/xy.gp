# Curves and points against x, in one or more side-by-side panels.
#
# pnd sets, besides term and out (see styles.gp):
#   np                 number of panels (default 1)
#   nrows              rows of panels (default 1)
# and for panel p (prefix pP_, for example p1_xlabel):
#   data               data file: blocks separated by two blank lines,
#                      columns x, y, 95% half-width, reference value
#   xlabel, ylabel, title
#   logx, logy         '1' for a logarithmic axis
#   key                key position, such as 'top left' (default), or 'off'
#   ylo, yhi           limits of the y autoscale, such as 0 and 100 for a
#                      percentage: the axis follows the data inside them,
#                      and shaded bands are clipped to them
#   xstep              spacing of the x tics (default: gnuplot's choice);
#                      a factor on a logarithmic axis, from 1
#   xformat            format of the x tic labels, such as '%g'
#   xtics              x tic positions, such as '0.1, 0.3, 0.5': a log axis
#                      that spans less than a decade has no labelled tic
#   n                  number of series
# and for series i of panel p (pP_kI, pP_lsI, ...):
#   k                  kind: 'pe' points with error bars, 'le' lines and
#                      error bars, 'l' lines, 'lp' lines and points,
#                      'p' points, 'band' line with a shaded 95% band
#   ls                 line style (styles.gp: 1-7 schemes, 11-14 references)
#   t                  key title ('' for none)
#   ix                 data block, counted from 0 (default i - 1)
#   c                  y column for 'l', 'lp' and 'p' (default 2)
#   dt                 dash type (default 1); 0 keeps the dash pattern of
#                      the line style, which tells the schemes apart

if (!exists("np")) np = 1
np = int(np)
if (!exists("nrows")) nrows = 1
nrows = int(nrows)
ncols = int(ceil(real(np) / nrows))
if (!exists("fig_w")) fig_w = (ncols > 1 ? 0.62 * ncols : 1.0)
if (!exists("fig_h")) fig_h = (nrows > 1 ? 0.8 * nrows : 1.0)
load pnd_data_dir.'/styles.gp'

# Value of the variable pP_name for the current panel p, or def when unset.
pv(name, def) = exists(sprintf('p%d_%s', p, name)) ? value(sprintf('p%d_%s', p, name)) : def

# A value clipped to the y limits of the current panel (ylo, yhi below).
clip(v) = v < ylo ? ylo : (v > yhi ? yhi : v)

if (np > 1) { set multiplot layout nrows, ncols }
do for [p=1:np] {
    set xlabel pv('xlabel', '')
    set ylabel pv('ylabel', '')
    set title pv('title', '')
    set key default
    set key box opaque samplen 2 spacing 1.1 font ',8'
    eval('set key '.pv('key', 'top left'))
    if (pv('logx', '0') eq '1') { set logscale x; set format x '10^{%L}' } else { unset logscale x; set format x '% h' }
    if (pv('xstep', '') eq '') { set xtics autofreq } else {
        if (pv('logx', '0') eq '1') { set xtics 1, real(pv('xstep', '2')) } else { set xtics real(pv('xstep', '1')) }
    }
    if (pv('xtics', '') ne '') { eval('set xtics ('.pv('xtics', '').')') }
    if (pv('xformat', '') ne '') { set format x pv('xformat', '%g') }
    if (pv('logy', '0') eq '1') { set logscale y; set format y '10^{%L}' } else { unset logscale y; set format y '% h' }
    # x spans the data with a small margin, so that points and error bars
    # at the ends stay clear of the axes; y keeps a margin too, so that a
    # band whose edge ends near a tic does not touch the frame. A limit
    # from ylo or yhi still holds.
    set autoscale xfix
    set offsets graph 0.03, graph 0.03, graph 0.04, graph 0.04
    ylo = (pv('ylo', '') eq '') ? -1e300 : real(pv('ylo', '0'))
    yhi = (pv('yhi', '') eq '') ? 1e300 : real(pv('yhi', '0'))
    if (pv('ylo', '') ne '' || pv('yhi', '') ne '') { eval(sprintf('set yrange [%g<*:*<%g]', ylo, yhi)) } else { set yrange [*:*] }

    file = pv('data', '')
    cmd = ''
    do for [i=1:int(pv('n', 0))] {
        kind = pv(sprintf('k%d', i), 'l')
        style = int(pv(sprintf('ls%d', i), 11))
        dash = int(pv(sprintf('dt%d', i), 1))
        dstr = (dash > 0) ? sprintf('dt %d', dash) : ''
        block = int(pv(sprintf('ix%d', i), i - 1))
        col = int(pv(sprintf('c%d', i), 2))
        t = pv(sprintf('t%d', i), '')
        key = (t eq '') ? 'notitle' : sprintf("title '%s'", t)
        src = sprintf("'%s' index %d", file, block)
        if (kind eq 'pe') { el = sprintf("%s using 1:2:3 with yerrorbars ls %d %s", src, style, key) }
        if (kind eq 'le') { el = sprintf("%s using 1:2:3 with yerrorlines ls %d %s %s", src, style, dstr, key) }
        if (kind eq 'l') { el = sprintf("%s using 1:%d with lines ls %d %s %s", src, col, style, dstr, key) }
        if (kind eq 'lp') { el = sprintf("%s using 1:%d with linespoints ls %d %s %s", src, col, style, dstr, key) }
        if (kind eq 'p') { el = sprintf("%s using 1:%d with points ls %d %s", src, col, style, key) }
        if (kind eq 'band') { el = sprintf("%s using 1:(clip($2-$3)):(clip($2+$3)) with filledcurves ls %d fs transparent solid 0.18 noborder notitle, %s using 1:(clip($2)) with lines ls %d %s %s", src, style, src, style, dstr, key) }
        cmd = cmd.(i > 1 ? ', ' : '').el
    }
    eval('plot '.cmd)
}
if (np > 1) { unset multiplot }
