# Terminal and line styles shared by every pnd figure.
#
# pnd sets: term ('pdf', 'png' or 'svg') and out (the output file).
# A template may set fig_w and fig_h (size factors) before loading this.
#
# Line styles 1-7 are the schemes, in the order of enum pnd_scheme, with
# one colour (Okabe-Ito palette, readable in grey and by colour-blind
# readers), one dash pattern and one point type each, the same in every
# figure. Schemes with equal values (dropconnect and pernodedrop on one
# sample, say) draw on top of each other; the dashes of the later ones
# leave the earlier ones visible in their gaps:
#   1 none  2 dropout  3 gaussian-dropout  4 dropconnect
#   5 pernodedrop  6 pernodedrop-gaussian  7 fixed-mask
# Styles 11-14 are reference lines: 11 analytic or exact value, 12 guide
# slope, 13 zero line, 14 a second quantity beside a scheme's own.

if (!exists("fig_w")) fig_w = 1.0
if (!exists("fig_h")) fig_h = 1.0

if (term eq 'pdf') {
    set terminal pdfcairo enhanced color font 'Helvetica,9' \
        size (5.0 * fig_w)in, (3.4 * fig_h)in
} else {
    if (term eq 'png') {
        set terminal pngcairo enhanced font 'Helvetica,10' \
            size int(900 * fig_w), int(620 * fig_h)
    } else {
        set terminal svg enhanced font 'Helvetica,10' \
            size int(900 * fig_w), int(620 * fig_h)
    }
}
set output out

set encoding utf8
set datafile separator whitespace
set datafile missing '?'
set border 3
set tics nomirror out
set grid lc rgb '#dddddd' lw 0.5
set key top left box opaque samplen 2 spacing 1.1 font ',8'
set bars small

set style line 1 lc rgb '#000000' lw 1.5 dt 1 pt 1 ps 0.7            # none
set style line 2 lc rgb '#E69F00' lw 1.5 dt (10,4) pt 5 ps 0.7       # dropout
set style line 3 lc rgb '#56B4E9' lw 1.5 dt (3,3) pt 9 ps 0.7        # gaussian-dropout
set style line 4 lc rgb '#009E73' lw 1.5 dt (14,4,3,4) pt 13 ps 0.7  # dropconnect
set style line 5 lc rgb '#D55E00' lw 2.0 dt 1 pt 7 ps 0.7            # pernodedrop
set style line 6 lc rgb '#CC79A7' lw 1.5 dt (6,3) pt 11 ps 0.7       # pernodedrop-gaussian
set style line 7 lc rgb '#0072B2' lw 1.5 dt (2,5) pt 3 ps 0.7        # fixed-mask

set style line 11 lc rgb '#444444' lw 1.0 dt 1 pt 0    # analytic or exact
set style line 12 lc rgb '#888888' lw 1.0 dt 2 pt 0    # guide slope
set style line 13 lc rgb '#888888' lw 0.8 dt 3 pt 0    # zero line
set style line 14 lc rgb '#666666' lw 1.2 dt 4 pt 6 ps 0.6
